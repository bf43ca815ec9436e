package e2e

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// A netLab is a small network of Linux network namespaces standing for
// separate hosts: each host has a veth pair whose other end is a port of a
// bridge, and the bridge lives in a namespace of its own, so nothing is
// added to the network of the machine running the test. Every host's
// /etc/netns/NS/hosts (which `ip netns exec` bind-mounts over /etc/hosts)
// names all the hosts, so daemons find each other by host name.
//
// Namespaces are named dbnet-PID-HOST (the bridge's dbnet-PID-lan), PID
// being the test process's: a run removes whatever an earlier run whose
// process is gone left behind, and never touches a live run's.
type netLab struct {
	t      testing.TB
	prefix string            // dbnet-PID-
	addrs  map[string]string // host name -> its LAN address
	extra  map[string]map[string]string
	hosts  []string
	// madeEtcNetns: /etc/netns did not exist before, and goes at the end
	// if no other run's files are in it.
	madeEtcNetns bool
}

const (
	labPrefix = "dbnet-"
	labNet    = "10.77.0" // the LAN is 10.77.0.0/25; point-to-point links use 10.77.0.252/30
)

// ipCmd runs ip(8) and returns its combined output.
func ipCmd(args ...string) (string, error) {
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// newNetLab makes the bridge's namespace and one namespace per host, with
// LAN addresses 10.77.0.2, .3, ... in the order given. It skips the test,
// saying why, where namespaces cannot be made; everything it makes is
// removed when the test ends, passed or failed.
func newNetLab(t *testing.T, hosts ...string) *netLab {
	t.Helper()
	if runtime.GOOS != "linux" {
		t.Skip("skipped: network namespaces need Linux")
	}
	if os.Geteuid() != 0 {
		t.Skip("skipped: making network namespaces (ip netns add) needs root; run the e2e tests as root (CI does)")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("skipped: no ip(8) to make network namespaces with (apt-get install iproute2)")
	}
	removeStaleLabs(t)
	l := &netLab{t: t, prefix: fmt.Sprintf("%s%d-", labPrefix, os.Getpid()), addrs: map[string]string{}, extra: map[string]map[string]string{}, hosts: hosts}
	t.Cleanup(l.remove)
	lan := l.ns("lan")
	if _, err := ipCmd("netns", "add", lan); err != nil {
		t.Skipf("skipped: network namespaces cannot be made here: %v", err)
	}
	if _, err := os.Stat("/etc/netns"); os.IsNotExist(err) {
		l.madeEtcNetns = true
	}
	if err := os.MkdirAll("/etc/netns", 0o755); err != nil {
		t.Skipf("skipped: cannot give namespaces their own /etc/hosts (/etc/netns): %v", err)
	}
	l.must("-n", lan, "link", "add", "br0", "type", "bridge")
	l.must("-n", lan, "link", "set", "br0", "up")
	for i, h := range hosts {
		ns := l.ns(h)
		l.must("netns", "add", ns)
		l.must("-n", ns, "link", "set", "lo", "up")
		// Both ends are made inside the host's namespace and the
		// bridge's end moved at once: neither passes through the
		// namespace of the machine running the test.
		l.must("-n", ns, "link", "add", "eth0", "type", "veth", "peer", "name", h, "netns", lan)
		l.must("-n", lan, "link", "set", h, "master", "br0", "up")
		addr := fmt.Sprintf("%s.%d", labNet, i+2)
		l.addrs[h] = addr
		l.must("-n", ns, "addr", "add", addr+"/25", "dev", "eth0")
		l.must("-n", ns, "link", "set", "eth0", "up")
	}
	return l
}

// link joins hosts a and b with a veth pair of their own (device NAME-b in
// a, NAME-a in b, on 10.77.0.252/30), and has a reach b by name over it:
// a second network, as a controller might reach its trove over a storage
// network. Call it before writeHosts.
func (l *netLab) link(a, b string) {
	l.t.Helper()
	devA, devB := "to-"+b, "to-"+a
	l.must("-n", l.ns(a), "link", "add", devA, "type", "veth", "peer", "name", devB, "netns", l.ns(b))
	l.must("-n", l.ns(a), "addr", "add", labNet+".253/30", "dev", devA)
	l.must("-n", l.ns(b), "addr", "add", labNet+".254/30", "dev", devB)
	l.must("-n", l.ns(a), "link", "set", devA, "up")
	l.must("-n", l.ns(b), "link", "set", devB, "up")
	if l.extra[a] == nil {
		l.extra[a] = map[string]string{}
	}
	l.extra[a][b] = labNet + ".254"
}

// writeHosts writes every host's /etc/netns/NS/hosts.
func (l *netLab) writeHosts() {
	l.t.Helper()
	for _, h := range l.hosts {
		var b strings.Builder
		b.WriteString("127.0.0.1\tlocalhost\n")
		for _, other := range l.hosts {
			addr := l.addrs[other]
			if a, ok := l.extra[h][other]; ok {
				addr = a
			}
			fmt.Fprintf(&b, "%s\t%s\n", addr, other)
		}
		dir := filepath.Join("/etc/netns", l.ns(h))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			l.t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "hosts"), []byte(b.String()), 0o644); err != nil {
			l.t.Fatal(err)
		}
	}
	// ip netns exec bind-mounts the file over /etc/hosts: check it does
	// here before anything relies on it.
	h := l.hosts[0]
	out, err := exec.Command("ip", "netns", "exec", l.ns(h), "cat", "/etc/hosts").CombinedOutput()
	if err != nil || !strings.Contains(string(out), l.addrs[l.hosts[len(l.hosts)-1]]+"\t") {
		l.t.Skipf("skipped: ip netns exec does not put /etc/netns/%s/hosts in place of /etc/hosts here (%v): %s", l.ns(h), err, out)
	}
}

func (l *netLab) ns(host string) string { return l.prefix + host }

func (l *netLab) must(args ...string) {
	l.t.Helper()
	if _, err := ipCmd(args...); err != nil {
		l.t.Fatal(err)
	}
}

// setLink brings a device of a host (or of the bridge: host "lan") up or
// down: a cable pulled and plugged back.
func (l *netLab) setLink(host, dev string, up bool) {
	l.t.Helper()
	state := "down"
	if up {
		state = "up"
	}
	l.must("-n", l.ns(host), "link", "set", dev, state)
}

// command is a command run inside a host's namespace.
func (l *netLab) command(host, bin string, args ...string) *exec.Cmd {
	return exec.Command("ip", append([]string{"netns", "exec", l.ns(host), bin}, args...)...)
}

// remove deletes the lab's namespaces and hosts files. Processes still
// running inside a namespace are the test's own and were stopped by
// their cleanups, which run before this one.
func (l *netLab) remove() {
	removeLab(l.t, l.prefix)
	if l.madeEtcNetns {
		os.Remove("/etc/netns") // fails, leaving it, unless empty
	}
}

var labNameRE = regexp.MustCompile(`^` + labPrefix + `(\d+)-`)

// removeStaleLabs removes the namespaces and hosts files of earlier runs
// whose test process is gone (a crashed or killed run).
func removeStaleLabs(t testing.TB) {
	names := map[string]bool{}
	out, _ := exec.Command("ip", "netns", "list").Output()
	for _, line := range strings.Split(string(out), "\n") {
		if f := strings.Fields(line); len(f) > 0 {
			names[f[0]] = true
		}
	}
	dirs, _ := os.ReadDir("/etc/netns")
	for _, d := range dirs {
		names[d.Name()] = true
	}
	stale := map[string]bool{}
	for n := range names {
		m := labNameRE.FindStringSubmatch(n)
		if m == nil {
			continue
		}
		pid, _ := strconv.Atoi(m[1])
		if pid != os.Getpid() && unix.Kill(pid, 0) == unix.ESRCH {
			stale[m[0]] = true
		}
	}
	for prefix := range stale {
		t.Logf("removing network namespaces %s* left by an earlier run", prefix)
		removeLab(t, prefix)
	}
}

func removeLab(t testing.TB, prefix string) {
	out, _ := exec.Command("ip", "netns", "list").Output()
	for _, line := range strings.Split(string(out), "\n") {
		if f := strings.Fields(line); len(f) > 0 && strings.HasPrefix(f[0], prefix) {
			// Deleting a namespace deletes its veth ends, and with them
			// their peers.
			if _, err := ipCmd("netns", "delete", f[0]); err != nil {
				t.Errorf("cleaning up: %v", err)
			}
		}
	}
	dirs, _ := os.ReadDir("/etc/netns")
	for _, d := range dirs {
		if strings.HasPrefix(d.Name(), prefix) {
			if err := os.RemoveAll(filepath.Join("/etc/netns", d.Name())); err != nil {
				t.Errorf("cleaning up: %v", err)
			}
		}
	}
}

// httpClient is an HTTPS client whose connections are made inside a
// host's namespace, resolving host names as that host does, trusting ca.
func (l *netLab) httpClient(from, ca string) *http.Client {
	pemData, err := os.ReadFile(ca)
	if err != nil {
		l.t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pemData)
	ns := l.ns(from)
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		host, port, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, err
		}
		if a, ok := l.extra[from][host]; ok {
			host = a
		} else if a, ok := l.addrs[host]; ok {
			host = a
		}
		type res struct {
			c   net.Conn
			err error
		}
		ch := make(chan res, 1)
		go func() {
			// The socket is made on a thread moved into the namespace;
			// the goroutine ends locked, so that thread is thrown away
			// rather than reused.
			runtime.LockOSThread()
			fd, err := unix.Open("/run/netns/"+ns, unix.O_RDONLY|unix.O_CLOEXEC, 0)
			if err != nil {
				ch <- res{nil, err}
				return
			}
			defer unix.Close(fd)
			if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
				ch <- res{nil, err}
				return
			}
			var d net.Dialer
			c, err := d.DialContext(ctx, network, net.JoinHostPort(host, port))
			ch <- res{c, err}
		}()
		r := <-ch
		return r.c, r.err
	}
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DialContext: dial, TLSClientConfig: &tls.Config{RootCAs: pool}}}
}

// farmCerts writes a CA and, for each name, a certificate for that DNS
// name (a server's or a client's) signed by it, as NAME.pem and NAME.key
// in dir. It returns the CA's path.
func farmCerts(t testing.TB, dir string, names ...string) string {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "distbuild farm CA"}, NotBefore: time.Now().Add(-time.Hour),
		NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	write := func(file, typ string, der []byte) string {
		p := filepath.Join(dir, file)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for i, name := range names {
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(int64(i + 2)), Subject: pkix.Name{CommonName: name}, DNSNames: []string{name},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}, KeyUsage: x509.KeyUsageDigitalSignature}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		keyDER, _ := x509.MarshalECPrivateKey(key)
		write(name+".pem", "CERTIFICATE", der)
		write(name+".key", "EC PRIVATE KEY", keyDER)
	}
	return write("ca.pem", "CERTIFICATE", caDER)
}
