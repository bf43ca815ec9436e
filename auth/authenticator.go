package auth

import (
	"context"
	"errors"
	"os"
	"slices"
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
// whenever it changes, so `controller worker remove` takes effect at once:
// new calls are refused, and streams opened with the revoked token are
// ended (see StreamInterceptor).
type Authenticator struct {
	path string
	// RevocationPoll is how often the registry file is checked for changes
	// while streams are open (default 250ms): a stat of one small file,
	// cheap enough to make revocation felt within a fraction of a second.
	RevocationPoll time.Duration

	mu            sync.Mutex
	modTime       time.Time
	size          int64
	byHash        map[string]Principal
	keys          map[string][]byte
	controllerKey []byte
	// streams are the open streams, by the token hash they were opened
	// with, each with the function that ends it.
	streams map[*openStream]struct{}
	// watching is set while a watch goroutine runs.
	watching bool
}

// openStream is a stream that must end if its token is revoked.
type openStream struct {
	hash   string
	p      Principal
	cancel context.CancelCauseFunc
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
	a.controllerKey = r.ControllerPublicKey
	for _, k := range []Kind{KindWorker, KindUser} {
		for name, e := range r.entries(k) {
			byHash[e.TokenSHA256] = Principal{Kind: k, Name: name}
			if k == KindWorker && len(e.PublicKey) > 0 {
				keys[name] = e.PublicKey
			}
		}
	}
	a.byHash, a.keys, a.modTime, a.size = byHash, keys, fi.ModTime(), fi.Size()
	for st := range a.streams {
		if byHash[st.hash] != st.p {
			st.cancel(status.Errorf(codes.Unauthenticated, "the token of %s %s was revoked", st.p.Kind, st.p.Name))
			delete(a.streams, st)
		}
	}
	return nil
}

// Reload rereads the registry file now, even if its size and modification
// time look unchanged (an edit within the file system's time resolution,
// or a file restored from a backup): what a daemon does on SIGHUP.
func (a *Authenticator) Reload() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.modTime, a.size = time.Time{}, -1
	return a.reload()
}

// ControllerKey returns the controller's public key from the registry,
// with which it signs attempt grants; nil when the registry has none. An
// unreadable registry is an error, never "no key": the check must not
// fail open.
func (a *Authenticator) ControllerKey() ([]byte, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if err := a.reload(); err != nil {
		return nil, err
	}
	return a.controllerKey, nil
}

// untilRevoked returns a context that is cancelled, with an Unauthenticated
// status as its cause, when the token with hash is revoked, and watches the
// registry file while such contexts are open.
func (a *Authenticator) untilRevoked(ctx context.Context, hash string, p Principal) context.Context {
	ctx, cancel := context.WithCancelCause(ctx)
	st := &openStream{hash: hash, p: p, cancel: cancel}
	a.mu.Lock()
	if a.streams == nil {
		a.streams = map[*openStream]struct{}{}
	}
	a.streams[st] = struct{}{}
	if !a.watching {
		a.watching = true
		go a.watch()
	}
	a.mu.Unlock()
	context.AfterFunc(ctx, func() {
		a.mu.Lock()
		delete(a.streams, st)
		a.mu.Unlock()
	})
	return ctx
}

// watch reloads the registry while streams are open, so revoking a token
// ends them even when they send nothing.
func (a *Authenticator) watch() {
	every := a.RevocationPoll
	if every <= 0 {
		every = 250 * time.Millisecond
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for range t.C {
		a.mu.Lock()
		if len(a.streams) == 0 {
			a.watching = false
			a.mu.Unlock()
			return
		}
		if err := a.reload(); err != nil {
			// An unreadable registry lets nobody keep a stream open, as it
			// lets nobody in.
			for st := range a.streams {
				st.cancel(status.Errorf(codes.Unauthenticated, "the registry cannot be read: %v", err))
				delete(a.streams, st)
			}
		}
		a.mu.Unlock()
	}
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
// A stream's context is also cancelled if its token is revoked while it is
// open; its handler must watch the context and return its cause
// (RevokedStatus).
func (a *Authenticator) check(ctx context.Context, method string, policy Policy, log hclog.Logger, streaming bool) (context.Context, error) {
	if slices.Contains(policy(method), Anyone) {
		return ctx, nil
	}
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
			ctx = context.WithValue(ctx, principalKey{}, p)
			if streaming {
				ctx = a.untilRevoked(ctx, hashToken(token), p)
			}
			return ctx, nil
		}
	}
	log.Warn("refused a call not allowed to its principal", "method", method, "kind", p.Kind, "name", p.Name, "from", from)
	return nil, status.Errorf(codes.PermissionDenied, "a %s may not call %s", p.Kind, method)
}

// UnaryInterceptor authenticates unary calls.
func (a *Authenticator) UnaryInterceptor(policy Policy, log hclog.Logger) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		ctx, err := a.check(ctx, info.FullMethod, policy, log, false)
		if err != nil {
			return nil, err
		}
		return handler(ctx, req)
	}
}

// StreamInterceptor authenticates streaming calls.
func (a *Authenticator) StreamInterceptor(policy Policy, log hclog.Logger) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		ctx, err := a.check(ss.Context(), info.FullMethod, policy, log, true)
		if err != nil {
			return err
		}
		return handler(srv, &principalStream{ServerStream: ss, ctx: ctx})
	}
}

// EndedBy is the status a stream handler returns when its context ended:
// Unauthenticated when its token was revoked, otherwise the context's
// own status (Canceled or DeadlineExceeded).
func EndedBy(ctx context.Context) error {
	if _, ok := status.FromError(context.Cause(ctx)); ok && context.Cause(ctx) != ctx.Err() {
		return context.Cause(ctx)
	}
	return status.FromContextError(ctx.Err()).Err()
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
