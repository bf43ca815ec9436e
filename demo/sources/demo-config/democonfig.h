/* democonfig.h: settings shared by every library of the demo system. */
#ifndef DEMOCONFIG_H
#define DEMOCONFIG_H

#define DEMO_VERSION_MAJOR 1
#define DEMO_VERSION_MINOR 0
#define DEMO_VERSION "1.0"

/*
 * The libraries are compiled with -fvisibility=hidden, and DEMO_API marks
 * the functions they export: each .so then exports exactly its header's
 * API, and internal helpers cannot become accidental dependencies.
 */
#if defined(__GNUC__)
#define DEMO_API __attribute__((visibility("default")))
#else
#define DEMO_API
#endif

/* DEMO_PRINTF(f, a) lets the compiler check printf-style format strings. */
#if defined(__GNUC__)
#define DEMO_PRINTF(fmt, args) __attribute__((format(printf, fmt, args)))
#else
#define DEMO_PRINTF(fmt, args)
#endif

#endif /* DEMOCONFIG_H */
