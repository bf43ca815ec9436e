// Package s3test runs a real SeaweedFS (master, volume server, filer and
// S3 gateway in one `weed server` process) on loopback for tests, so the
// S3 store is proved against a real S3 implementation rather than a fake.
//
// The weed binary is built once per machine by scripts/build-seaweedfs
// (which .ci/run calls) into the user's cache directory, keyed by the
// version in seaweedfs.version; a test that finds it missing builds it the
// same way, and skips, saying why, only when that build fails.
package s3test

import (
	"bytes"
	"context"
	"crypto/rand"
	_ "embed" // the pinned version
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

//go:embed seaweedfs.version
var versionFile string

// Version is the SeaweedFS module version the tests run.
func Version() string { return strings.TrimSpace(versionFile) }

// BinaryEnv names a variable that, when set, gives the weed binary to use
// instead of the one built for this machine.
const BinaryEnv = "DISTBUILD_SEAWEEDFS"

var (
	binaryOnce sync.Once
	binaryPath string
	binaryErr  error
)

// Binary returns the path of the weed binary, building it first if this
// machine has none; it skips t when that is impossible.
func Binary(t testing.TB) string {
	t.Helper()
	binaryOnce.Do(func() { binaryPath, binaryErr = findOrBuild() })
	if binaryErr != nil {
		t.Skipf("SeaweedFS (the real S3 store these tests need) is not available: %v", binaryErr)
	}
	return binaryPath
}

func findOrBuild() (string, error) {
	if p := os.Getenv(BinaryEnv); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("$%s: %w", BinaryEnv, err)
		}
		return p, nil
	}
	_, self, _, ok := runtime.Caller(0)
	if !ok {
		return "", fmt.Errorf("cannot locate scripts/build-seaweedfs")
	}
	script := filepath.Join(filepath.Dir(self), "..", "..", "..", "scripts", "build-seaweedfs")
	out, err := exec.Command(script).Output()
	if err != nil {
		msg := err.Error()
		if ee, ok := err.(*exec.ExitError); ok {
			msg += ": " + strings.TrimSpace(string(ee.Stderr))
		}
		return "", fmt.Errorf("scripts/build-seaweedfs could not build SeaweedFS %s: %s", Version(), msg)
	}
	return strings.TrimSpace(string(out)), nil
}

// Server is a running SeaweedFS with its S3 gateway on loopback.
type Server struct {
	t   testing.TB
	bin string
	dir string
	// ports: master, volume, filer and S3, each with its gRPC port.
	ports []int
	cmd   *exec.Cmd
	exit  chan struct{}
	log   *syncBuffer

	// Endpoint is the S3 gateway's URL (http://127.0.0.1:PORT).
	Endpoint string
	// CredentialsFile holds the access key in the AWS shared credentials
	// format, as trove serve --s3-credentials-file takes it.
	CredentialsFile string
	// Client is an S3 client with that key.
	Client *minio.Client
}

const (
	accessKey = "distbuild-test"
	// The gateway refuses requests not signed with this key, so the tests
	// exercise authentication too.
	secretKey = "distbuild-test-secret-key"
)

// Start runs a SeaweedFS server in a temporary directory until the test
// ends, and waits until its S3 gateway answers.
func Start(t testing.TB) *Server {
	t.Helper()
	s := &Server{t: t, bin: Binary(t), dir: t.TempDir(), log: &syncBuffer{}}
	ports, err := freePorts(8)
	if err != nil {
		t.Fatal(err)
	}
	s.ports = ports
	s.Endpoint = fmt.Sprintf("http://127.0.0.1:%d", ports[6])
	config, err := json.Marshal(map[string]any{"identities": []any{map[string]any{
		"name":        "distbuild",
		"credentials": []any{map[string]string{"accessKey": accessKey, "secretKey": secretKey}},
		"actions":     []string{"Admin", "Read", "Write", "List", "Tagging"},
	}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(s.dir, "s3.json"), config, 0o600); err != nil {
		t.Fatal(err)
	}
	s.CredentialsFile = filepath.Join(s.dir, "credentials")
	creds := fmt.Sprintf("[default]\naws_access_key_id = %s\naws_secret_access_key = %s\n", accessKey, secretKey)
	if err := os.WriteFile(s.CredentialsFile, []byte(creds), 0o600); err != nil {
		t.Fatal(err)
	}
	s.Client, err = minio.New(fmt.Sprintf("127.0.0.1:%d", ports[6]), &minio.Options{
		Creds: credentials.NewStaticV4(accessKey, secretKey, ""), Region: "us-east-1",
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(s.dir, "data"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.stop)
	s.Restart()
	return s
}

// freePorts finds n free loopback ports below 55535: SeaweedFS derives a
// gRPC port as port+10000 where none is given, and that must be valid.
func freePorts(n int) ([]int, error) {
	var ports []int
	var held []net.Listener
	defer func() {
		for _, l := range held {
			l.Close()
		}
	}()
	for tries := 0; len(ports) < n; tries++ {
		if tries > 1000 {
			return nil, fmt.Errorf("no free loopback ports below 55535")
		}
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		held = append(held, l)
		if p := l.Addr().(*net.TCPAddr).Port; p < 55535 {
			ports = append(ports, p)
		}
	}
	return ports, nil
}

// Restart starts the server (again, after Kill) on the same directory and
// ports and waits until the S3 gateway answers.
func (s *Server) Restart() {
	s.t.Helper()
	p := func(i int) string { return strconv.Itoa(s.ports[i]) }
	args := []string{"server",
		"-dir=" + filepath.Join(s.dir, "data"), "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
		"-master.port=" + p(0), "-master.port.grpc=" + p(1), "-master.telemetry=false", "-master.volumeSizeLimitMB=256",
		"-volume.port=" + p(2), "-volume.port.grpc=" + p(3), "-volume.max=64",
		"-filer", "-filer.port=" + p(4), "-filer.port.grpc=" + p(5),
		"-s3", "-s3.port=" + p(6), "-s3.port.grpc=" + p(7), "-s3.config=" + filepath.Join(s.dir, "s3.json"),
		"-s3.port.iceberg=0", "-s3.port.lance=0",
	}
	cmd := exec.Command(s.bin, args...)
	cmd.Dir = s.dir
	cmd.Stdout, cmd.Stderr = s.log, s.log
	if err := cmd.Start(); err != nil {
		s.t.Fatalf("start SeaweedFS: %v", err)
	}
	s.cmd, s.exit = cmd, make(chan struct{})
	go func(exit chan struct{}) { cmd.Wait(); close(exit) }(s.exit)
	deadline := time.Now().Add(2 * time.Minute)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err := s.Client.ListBuckets(ctx)
		cancel()
		if err == nil {
			return
		}
		select {
		case <-s.exit:
			s.t.Fatalf("SeaweedFS exited while starting:\n%s", s.log.String())
		default:
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("SeaweedFS's S3 gateway did not answer within 2 minutes (last error: %v):\n%s", err, s.log.String())
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// Kill stops the server at once (SIGKILL), as a crash would.
func (s *Server) Kill() {
	s.cmd.Process.Kill()
	<-s.exit
}

func (s *Server) stop() {
	if s.cmd == nil {
		return
	}
	select {
	case <-s.exit:
		return
	default:
	}
	s.cmd.Process.Signal(os.Interrupt)
	select {
	case <-s.exit:
	case <-time.After(10 * time.Second):
		s.Kill()
	}
	if s.t.Failed() {
		s.t.Logf("--- SeaweedFS log ---\n%s", s.log.String())
	}
}

// NewBucket creates a bucket with a fresh name and returns its s3:// URL
// with prefix (which may be empty).
func (s *Server) NewBucket(t testing.TB, prefix string) string {
	t.Helper()
	b := make([]byte, 6)
	rand.Read(b)
	name := "distbuild-" + hex.EncodeToString(b)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := s.Client.MakeBucket(ctx, name, minio.MakeBucketOptions{}); err != nil {
		t.Fatalf("create bucket %s: %v", name, err)
	}
	return "s3://" + name + "/" + prefix
}

// syncBuffer is a bytes.Buffer the process and the test may share.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
