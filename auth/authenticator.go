package auth

import (
	"context"
	"errors"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
)

// Principal is who a request comes from.
type Principal struct {
	Kind Kind
	Name string
}

// ErrUnknownToken is returned for a token that is not (or no longer)
// registered.
var ErrUnknownToken = errors.New("unknown or revoked token")

// Authenticator checks tokens against a registry file, reloading the file
// whenever it changes, so `controller worker remove` takes effect at once.
type Authenticator struct {
	path string

	mu      sync.Mutex
	modTime time.Time
	size    int64
	byHash  map[string]Principal
	keys    map[string][]byte
}

// NewAuthenticator reads the registry at path.
func NewAuthenticator(path string) (*Authenticator, error) {
	a := &Authenticator{path: path}
	if _, err := os.Stat(path); err != nil {
		return nil, err
	}
	if err := a.reload(); err != nil {
		return nil, err
	}
	return a, nil
}

// reload rereads the file if it changed. Called with a.mu held, or before
// the Authenticator is shared.
func (a *Authenticator) reload() error {
	fi, err := os.Stat(a.path)
	if err != nil {
		return err
	}
	if a.byHash != nil && fi.ModTime().Equal(a.modTime) && fi.Size() == a.size {
		return nil
	}
	r, err := Load(a.path)
	if err != nil {
		return err
	}
	byHash := map[string]Principal{}
	keys := map[string][]byte{}
	for _, k := range []Kind{KindWorker, KindUser} {
		for name, e := range r.entries(k) {
			byHash[e.TokenSHA256] = Principal{Kind: k, Name: name}
			if k == KindWorker && len(e.PublicKey) > 0 {
				keys[name] = e.PublicKey
			}
		}
	}
	a.byHash, a.keys, a.modTime, a.size = byHash, keys, fi.ModTime(), fi.Size()
	return nil
}

// Authenticate returns whose token this is.
func (a *Authenticator) Authenticate(token string) (Principal, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if err := a.reload(); err != nil {
		// An unreadable registry must not let anyone in.
		return Principal{}, err
	}
	// The lookup is by the token's SHA-256, so its timing tells an
	// attacker nothing about any stored token.
	if p, ok := a.byHash[hashToken(token)]; ok {
		return p, nil
	}
	return Principal{}, ErrUnknownToken
}

// WorkerKey returns a registered worker's public key.
func (a *Authenticator) WorkerKey(name string) ([]byte, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if err := a.reload(); err != nil {
		return nil, false
	}
	k, ok := a.keys[name]
	return k, ok
}

// Policy says which kinds of principal may call a gRPC method (by its full
// name, e.g. "/distbuild.v1.WorkerService/Work"); none means nobody.
type Policy func(fullMethod string) []Kind

type principalKey struct{}

// FromContext returns the principal an interceptor authenticated.
func FromContext(ctx context.Context) (Principal, bool) {
	p, ok := ctx.Value(principalKey{}).(Principal)
	return p, ok
}

// check authenticates a call and tells whether its principal may make it.
func (a *Authenticator) check(ctx context.Context, method string, policy Policy, log hclog.Logger) (context.Context, error) {
	token := ""
	if md, ok := metadata.FromIncomingContext(ctx); ok {
		if v := md.Get("authorization"); len(v) > 0 {
			token, _ = strings.CutPrefix(v[0], "Bearer ")
		}
	}
	from := "unknown"
	if p, ok := peer.FromContext(ctx); ok {
		from = p.Addr.String()
	}
	if token == "" {
		log.Warn("refused a call without credentials", "method", method, "from", from)
		return nil, status.Error(codes.Unauthenticated, "this farm requires a token: pass one with --token-file")
	}
	p, err := a.Authenticate(token)
	if err != nil {
		log.Warn("refused a call with bad credentials", "method", method, "from", from, "error", err)
		return nil, status.Errorf(codes.Unauthenticated, "%v", err)
	}
	for _, k := range policy(method) {
		if k == p.Kind {
			return context.WithValue(ctx, principalKey{}, p), nil
		}
	}
	log.Warn("refused a call not allowed to its principal", "method", method, "kind", p.Kind, "name", p.Name, "from", from)
	return nil, status.Errorf(codes.PermissionDenied, "a %s may not call %s", p.Kind, method)
}

// UnaryInterceptor authenticates unary calls.
func (a *Authenticator) UnaryInterceptor(policy Policy, log hclog.Logger) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		ctx, err := a.check(ctx, info.FullMethod, policy, log)
		if err != nil {
			return nil, err
		}
		return handler(ctx, req)
	}
}

// StreamInterceptor authenticates streaming calls.
func (a *Authenticator) StreamInterceptor(policy Policy, log hclog.Logger) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		ctx, err := a.check(ss.Context(), info.FullMethod, policy, log)
		if err != nil {
			return err
		}
		return handler(srv, &principalStream{ServerStream: ss, ctx: ctx})
	}
}

type principalStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *principalStream) Context() context.Context { return s.ctx }

// Token sends a bearer token with every call a client makes.
type Token string

// GetRequestMetadata adds the authorization header.
func (t Token) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + string(t)}, nil
}

// RequireTransportSecurity is false so tokens also work on a loopback farm
// without TLS; farms reachable from other machines should use TLS.
func (Token) RequireTransportSecurity() bool { return false }

// ReadTokenFile reads a token kept in a file (one line), so tokens never
// appear in command lines or process listings.
func ReadTokenFile(path string) (Token, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	t := strings.TrimSpace(string(data))
	if t == "" {
		return "", errors.New(path + " is empty")
	}
	return Token(t), nil
}
