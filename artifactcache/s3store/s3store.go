// Package s3store keeps the artifact cache in an S3-compatible object store
// (AWS S3, SeaweedFS, MinIO, ...), so that several troves can share one
// bucket instead of each being bounded by its own disk. It implements
// backend.Store; a trove puts its local store in front of it as a bounded
// read-through cache (artifactcache/cached).
//
// Layout under the bucket and prefix of an s3://bucket/prefix URL:
//
//	PREFIX/blobs/sha256/<hash>   each blob, content-addressed
//	PREFIX/manifests/<cache-key> each manifest, as its deterministic protobuf
//
// Consistency. An object appears in S3 only when the request that writes
// it completes: a blob is uploaded as a multipart upload (or one PUT when
// it fits in one part), streamed in parts of PartSize, a few at once with
// a bounded number in memory, and completed only after the whole content
// has hashed to the declared digest; an upload that fails, is aborted or
// whose trove dies is never completed, so no partial or unverified blob is
// ever visible under its name. A manifest is written only after every blob it names was found
// in the bucket, and troves never delete blobs, so a manifest implies its
// blobs; to hold even when something else deletes objects (a lifecycle
// rule, an operator), GetManifest and FindMissing check that each blob a
// manifest names is still there and answer NotFound (missing) otherwise,
// so the step is rebuilt rather than failing to fetch. Two troves storing
// the same cache key at once from different attempts race (S3 has no
// compare-and-swap that every implementation offers): within one trove the
// later attempt always wins, across troves the last write does.
package s3store

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"sync"

	"distbuild/digest"

	"github.com/hashicorp/go-hclog"
	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// DefaultPartSize is the size of each part of a multipart upload: an
// upload holds at most partsInFlight+1 of them in memory (one filling, the
// others on their way to the store).
const DefaultPartSize = 8 << 20

// minPartSize is S3's smallest part but the last.
const minPartSize = 5 << 20

// lookupParallelism bounds the requests one FindMissing or manifest check
// has in flight.
const lookupParallelism = 16

// Config says which bucket to use and how to reach it.
type Config struct {
	// URL is s3://BUCKET or s3://BUCKET/PREFIX.
	URL string
	// Endpoint is the store's address: http://HOST:PORT or
	// https://HOST:PORT.
	Endpoint string
	// CredentialsFile holds the access key in the AWS shared credentials
	// format (see ReadCredentials).
	CredentialsFile string
	// Region is the bucket's region; empty means us-east-1, which
	// single-site stores such as SeaweedFS and MinIO accept.
	Region string
	// PartSize is the size of an upload's parts; 0 means DefaultPartSize.
	PartSize int64
	// Logger receives what the store does; nil discards it.
	Logger hclog.Logger
}

// Store is an open bucket. It is safe for concurrent use.
type Store struct {
	core     minio.Core
	bucket   string
	prefix   string
	partSize int64
	log      hclog.Logger
	where    string // for error messages: endpoint and URL

	// keyLocks serialises manifest writes per cache key within this
	// process, so the attempt rule holds between a trove's own requests.
	keyLocksMu sync.Mutex
	keyLocks   map[digest.CacheKey]*keyLock
}

type keyLock struct {
	mu    sync.Mutex
	users int
}

// ParseURL splits s3://bucket/prefix into the bucket and the prefix of
// every object name ("" or ending in "/").
func ParseURL(raw string) (bucket, prefix string, err error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", "", fmt.Errorf("store URL %q: %v", raw, err)
	}
	if u.Scheme != "s3" || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return "", "", fmt.Errorf("store URL %q: want s3://BUCKET or s3://BUCKET/PREFIX", raw)
	}
	prefix = strings.Trim(u.Path, "/")
	if strings.Contains(prefix, "//") {
		return "", "", fmt.Errorf("store URL %q: the prefix has an empty path element", raw)
	}
	if prefix != "" {
		prefix += "/"
	}
	return u.Host, prefix, nil
}

// Open checks the configuration, connects and makes sure the bucket exists
// and the credentials are accepted, so that a mistake is reported when the
// trove starts rather than at the first upload.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	bucket, prefix, err := ParseURL(cfg.URL)
	if err != nil {
		return nil, err
	}
	ep, err := url.Parse(cfg.Endpoint)
	if err != nil || (ep.Scheme != "http" && ep.Scheme != "https") || ep.Host == "" || strings.Trim(ep.Path, "/") != "" {
		return nil, fmt.Errorf("S3 endpoint %q: want http://HOST:PORT or https://HOST:PORT", cfg.Endpoint)
	}
	if cfg.CredentialsFile == "" {
		return nil, errors.New("an S3 store needs a credentials file")
	}
	id, secret, err := ReadCredentials(cfg.CredentialsFile)
	if err != nil {
		return nil, err
	}
	if cfg.PartSize == 0 {
		cfg.PartSize = DefaultPartSize
	}
	if cfg.PartSize < minPartSize {
		return nil, fmt.Errorf("S3 part size %d is below S3's minimum of %d bytes", cfg.PartSize, minPartSize)
	}
	if cfg.Region == "" {
		cfg.Region = "us-east-1"
	}
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	client, err := minio.New(ep.Host, &minio.Options{
		Creds:  credentials.NewStaticV4(id, secret, ""),
		Secure: ep.Scheme == "https",
		Region: cfg.Region,
	})
	if err != nil {
		return nil, fmt.Errorf("S3 endpoint %s: %v", cfg.Endpoint, err)
	}
	s := &Store{
		core: minio.Core{Client: client}, bucket: bucket, prefix: prefix, partSize: cfg.PartSize,
		log: cfg.Logger, where: cfg.Endpoint + " " + cfg.URL, keyLocks: map[digest.CacheKey]*keyLock{},
	}
	ok, err := client.BucketExists(ctx, bucket)
	if err != nil {
		return nil, fmt.Errorf("S3 store %s: checking the bucket: %v", s.where, err)
	}
	if !ok {
		return nil, fmt.Errorf("S3 store %s: bucket %q does not exist; create it first (with SeaweedFS: echo 's3.bucket.create -name %s' | weed shell)", s.where, bucket, bucket)
	}
	return s, nil
}

// ReadCredentials reads an access key from a file in the AWS shared
// credentials format, the [default] section (or a file with no sections):
//
//	[default]
//	aws_access_key_id = KEY
//	aws_secret_access_key = SECRET
func ReadCredentials(path string) (id, secret string, err error) {
	f, err := os.Open(path)
	if err != nil {
		return "", "", fmt.Errorf("S3 credentials file: %w", err)
	}
	defer f.Close()
	section := "default"
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";"):
			continue
		case strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]"):
			section = strings.TrimSpace(line[1 : len(line)-1])
			continue
		}
		name, value, ok := strings.Cut(line, "=")
		if !ok {
			return "", "", fmt.Errorf("S3 credentials file %s, line %d: want NAME = VALUE", path, n)
		}
		if section != "default" {
			continue
		}
		switch strings.TrimSpace(name) {
		case "aws_access_key_id":
			id = strings.TrimSpace(value)
		case "aws_secret_access_key":
			secret = strings.TrimSpace(value)
		}
	}
	if err := sc.Err(); err != nil {
		return "", "", fmt.Errorf("S3 credentials file %s: %w", path, err)
	}
	if id == "" || secret == "" {
		return "", "", fmt.Errorf("S3 credentials file %s: the [default] section needs aws_access_key_id and aws_secret_access_key", path)
	}
	return id, secret, nil
}

func (s *Store) blobName(h digest.Hash) string { return s.prefix + "blobs/sha256/" + h.String() }

func (s *Store) manifestName(k digest.CacheKey) string { return s.prefix + "manifests/" + k.String() }

// lockKey serialises the manifest writes of one cache key.
func (s *Store) lockKey(k digest.CacheKey) func() {
	s.keyLocksMu.Lock()
	l := s.keyLocks[k]
	if l == nil {
		l = &keyLock{}
		s.keyLocks[k] = l
	}
	l.users++
	s.keyLocksMu.Unlock()
	l.mu.Lock()
	return func() {
		l.mu.Unlock()
		s.keyLocksMu.Lock()
		if l.users--; l.users == 0 {
			delete(s.keyLocks, k)
		}
		s.keyLocksMu.Unlock()
	}
}

// isNotFound says whether S3 answered that the object does not exist.
func isNotFound(err error) bool {
	code := minio.ToErrorResponse(err).Code
	return code == minio.NoSuchKey || code == "NotFound" || code == minio.NoSuchUpload
}

// s3Status turns an S3 client error into a gRPC status for the cache's
// clients: the caller's cancellation as such, a store that cannot be
// reached as Unavailable (worth retrying), anything else as Internal.
func (s *Store) s3Status(err error, format string, args ...any) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return status.FromContextError(err).Err()
	}
	code := codes.Internal
	if minio.ToErrorResponse(err).Code == "" {
		code = codes.Unavailable // no answer from the store at all
	}
	return status.Errorf(code, "S3 store %s: %s: %v", s.where, fmt.Sprintf(format, args...), err)
}

// parallel runs fn(i) for i in [0, n) with at most lookupParallelism at
// once, and returns the first error.
func parallel(ctx context.Context, n int, fn func(ctx context.Context, i int) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	sem := make(chan struct{}, lookupParallelism)
	var wg sync.WaitGroup
	var once sync.Once
	var first error
	for i := range n {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		wg.Go(func() {
			defer func() { <-sem }()
			if err := fn(ctx, i); err != nil {
				once.Do(func() { first = err; cancel() })
			}
		})
	}
	wg.Wait()
	if first == nil && ctx.Err() != nil {
		first = status.FromContextError(ctx.Err()).Err()
	}
	return first
}
