// Package exposure tells an operator when a daemon listens beyond this
// machine without TLS or without authentication: the defaults are safe
// (loopback), but binding a real interface is one flag away, and a farm's
// listeners hand out build results and accept artifacts.
package exposure

import (
	"net"
	"strings"
)

// Warning says what is exposed when addr (an address a listener is bound
// to) can be reached from other machines without TLS or authentication;
// it is empty when addr is loopback or both are on.
func Warning(addr string, tls, auth bool) string {
	if tls && auth {
		return ""
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		host = addr
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() || host == "localhost" {
		return ""
	}
	var missing []string
	if !tls {
		missing = append(missing, "TLS (--tls-cert, --tls-key)")
	}
	if !auth {
		missing = append(missing, "authentication (--require-auth)")
	}
	return "listening on " + addr + ", reachable from other machines, without " + strings.Join(missing, " or ") +
		": anyone who can reach it can use it; bind 127.0.0.1 or turn them on"
}
