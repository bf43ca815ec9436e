package initiator

import (
	"fmt"
	"os"

	"google.golang.org/grpc"

	"distbuild/artifactcache"
	"distbuild/internal/credentials"
	"distbuild/internal/tlsflags"
)

// Credentials come from the environment rather than flags, so that every
// command (and every script calling it) uses the same ones without
// repeating them, the way kubectl or git use theirs:
//
//	DISTBUILD_TOKEN_FILE  a file holding the user's token ('controller user add')
//	DISTBUILD_TLS_CA      connect with TLS, trusting this PEM CA
//	DISTBUILD_TLS_CERT    a PEM client certificate, for servers requiring mTLS
//	DISTBUILD_TLS_KEY     its private key
const credentialsHelp = `Connections use TLS and a token when the environment says so:
DISTBUILD_TOKEN_FILE (the user's token from 'controller user add'),
DISTBUILD_TLS_CA, and for mTLS DISTBUILD_TLS_CERT and DISTBUILD_TLS_KEY.`

// maxMessageSize bounds what the initiator accepts in one message.
const maxMessageSize = 64 << 20

// dialOptions are the options every connection to the farm uses.
func dialOptions() ([]grpc.DialOption, error) {
	tls := tlsflags.Client{CA: os.Getenv("DISTBUILD_TLS_CA"), Cert: os.Getenv("DISTBUILD_TLS_CERT"), Key: os.Getenv("DISTBUILD_TLS_KEY")}
	opts, err := credentials.DialOptions(tls, os.Getenv("DISTBUILD_TOKEN_FILE"))
	if err != nil {
		return nil, fmt.Errorf("DISTBUILD_TLS_* or DISTBUILD_TOKEN_FILE: %w", err)
	}
	// A large graph's GraphResolved event lists every step; leave room
	// beyond gRPC's default 4 MiB for systems far bigger than today's.
	return append(opts, grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(maxMessageSize))), nil
}

// dialCache connects to the artifact cache with the farm's credentials.
func dialCache(addr string) (*artifactcache.Client, error) {
	opts, err := dialOptions()
	if err != nil {
		return nil, err
	}
	return artifactcache.Dial(addr, opts...)
}
