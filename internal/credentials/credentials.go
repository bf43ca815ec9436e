// Package credentials gives every client of the farm's daemons (the
// controller dialling the cache, a worker dialling the controller and the
// cache, the initiator dialling both) its connection credentials in one
// way: TLS as configured, and the bearer token from a token file sent with
// every call.
package credentials

import (
	"fmt"

	"google.golang.org/grpc"

	"distbuild/auth"
	"distbuild/internal/tlsflags"
)

// DialOptions returns the options that make a connection use tls and,
// when tokenFile is not empty, present the token it holds. Tokens are read
// from files, never flags, so they stay out of process listings.
func DialOptions(tls tlsflags.Client, tokenFile string) ([]grpc.DialOption, error) {
	creds, err := tls.DialOption()
	if err != nil {
		return nil, err
	}
	opts := []grpc.DialOption{creds}
	if tokenFile != "" {
		token, err := auth.ReadTokenFile(tokenFile)
		if err != nil {
			return nil, fmt.Errorf("token file: %w", err)
		}
		opts = append(opts, grpc.WithPerRPCCredentials(token))
	}
	return opts, nil
}
