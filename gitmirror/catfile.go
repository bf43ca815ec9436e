package gitmirror

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"io/fs"
	"os/exec"
	"strconv"
	"strings"
	"sync"
)

// blobReader reads blobs through one long-running `git cat-file --batch`,
// so reading a tree of hundreds of small files costs one process start
// instead of one per file. Requests are serialised by a mutex: the batch
// protocol is a single request/response stream.
type blobReader struct {
	mu     sync.Mutex
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stdout *bufio.Reader
	err    error // sticky: once the stream is broken or closed, it stays so
}

// startBlobReader starts cat-file in the repository at dir. The process lives
// until close is called or ctx ends.
func startBlobReader(ctx context.Context, dir string) (*blobReader, error) {
	cmd := gitCommand(ctx, dir, "cat-file", "--batch")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	return &blobReader{cmd: cmd, stdin: stdin, stdout: bufio.NewReader(stdout)}, nil
}

// read returns the content of the blob oid.
func (b *blobReader) read(oid string) ([]byte, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.err != nil {
		return nil, b.err
	}
	data, err := b.request(oid)
	if err != nil {
		// A failed exchange leaves the stream at an unknown position, and
		// cat-file may be blocked writing an answer nobody will read.
		b.err = fmt.Errorf("git cat-file: %w", err)
		b.cmd.Process.Kill()
		b.stop()
		return nil, b.err
	}
	return data, nil
}

// request performs one exchange of the batch protocol: the object id in, a
// header line ("<oid> <type> <size>") and the content out. Any other answer
// ("<oid> missing") cannot happen for ids the mirror listed itself, so it is
// treated like a broken stream.
func (b *blobReader) request(oid string) ([]byte, error) {
	if _, err := io.WriteString(b.stdin, oid+"\n"); err != nil {
		return nil, err
	}
	header, err := b.stdout.ReadString('\n')
	if err != nil {
		return nil, fmt.Errorf("reading the answer for %s: %w", oid, err)
	}
	fields := strings.Fields(header)
	if len(fields) != 3 || fields[0] != oid {
		return nil, fmt.Errorf("unexpected answer for %s: %q", oid, strings.TrimSpace(header))
	}
	size, err := strconv.ParseInt(fields[2], 10, 64)
	if err != nil || size < 0 {
		return nil, fmt.Errorf("unexpected answer for %s: %q", oid, strings.TrimSpace(header))
	}
	data := make([]byte, size+1) // content and the newline that ends it
	if _, err := io.ReadFull(b.stdout, data); err != nil {
		return nil, fmt.Errorf("reading %s: %w", oid, err)
	}
	if fields[1] != "blob" {
		return nil, fmt.Errorf("object %s is a %s, not a blob", oid, fields[1])
	}
	return data[:size], nil
}

// close ends the process; later reads fail with fs.ErrClosed.
func (b *blobReader) close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.err == nil {
		b.err = fs.ErrClosed
		b.stop()
	}
	return nil
}

// stop closes cat-file's input, which makes it exit, and reaps it.
func (b *blobReader) stop() {
	b.stdin.Close()
	b.cmd.Wait()
}
