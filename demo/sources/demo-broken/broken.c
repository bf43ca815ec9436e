/*
 * demo-broken exists to fail: the demo's broken-system builds it so that a
 * failing build, its exit status and its log can be seen and tested. The
 * compiler stops at the #error below with exit status 1.
 */
#include <democonfig.h>

#error "demo-broken: this chunk fails to build on purpose"

int main(void)
{
	return 0;
}
