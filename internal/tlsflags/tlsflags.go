// Package tlsflags gives every distbuild daemon and client the same TLS
// flags. A farm whose machines talk across a real network turns TLS on with
// a certificate for each listener, and can require client certificates
// (mTLS) so that only machines it issued certificates to can even connect;
// tokens (package auth) then say who each one is. Without the flags,
// everything is plaintext, which is only fine on loopback.
package tlsflags

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"

	"github.com/spf13/pflag"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
)

// Server holds a listener's TLS flags.
type Server struct {
	Cert, Key, ClientCA string
}

// Register adds --tls-cert, --tls-key and --tls-client-ca.
func (s *Server) Register(fs *pflag.FlagSet) {
	fs.StringVar(&s.Cert, "tls-cert", "", "serve TLS with this PEM certificate (chain)")
	fs.StringVar(&s.Key, "tls-key", "", "the PEM private key of --tls-cert")
	fs.StringVar(&s.ClientCA, "tls-client-ca", "", "require client certificates signed by this PEM CA (mTLS)")
}

// Config builds the listener's TLS configuration; nil means plaintext.
func (s Server) Config() (*tls.Config, error) {
	if s.Cert == "" && s.Key == "" && s.ClientCA == "" {
		return nil, nil
	}
	if s.Cert == "" || s.Key == "" {
		return nil, errors.New("--tls-cert and --tls-key go together")
	}
	pair, err := tls.LoadX509KeyPair(s.Cert, s.Key)
	if err != nil {
		return nil, fmt.Errorf("loading --tls-cert/--tls-key: %w", err)
	}
	cfg := &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12}
	if s.ClientCA != "" {
		pool, err := loadPool(s.ClientCA)
		if err != nil {
			return nil, fmt.Errorf("--tls-client-ca: %w", err)
		}
		cfg.ClientCAs, cfg.ClientAuth = pool, tls.RequireAndVerifyClientCert
	}
	return cfg, nil
}

// GRPCOptions returns the server options for s: TLS credentials, or none.
func (s Server) GRPCOptions() ([]grpc.ServerOption, error) {
	cfg, err := s.Config()
	if err != nil || cfg == nil {
		return nil, err
	}
	return []grpc.ServerOption{grpc.Creds(credentials.NewTLS(cfg))}, nil
}

// Client holds a client's TLS flags.
type Client struct {
	CA, Cert, Key string
}

// Register adds --PREFIXtls-ca, --PREFIXtls-cert and --PREFIXtls-key for
// connections to what is described as server (e.g. "the controller").
// Daemons that are also clients use a prefix such as "cache-".
func (c *Client) Register(fs *pflag.FlagSet, prefix, server string) {
	fs.StringVar(&c.CA, prefix+"tls-ca", "", "connect to "+server+" with TLS, trusting this PEM CA")
	fs.StringVar(&c.Cert, prefix+"tls-cert", "", "with --"+prefix+"tls-ca: present this PEM client certificate to "+server+" (mTLS)")
	fs.StringVar(&c.Key, prefix+"tls-key", "", "the PEM private key of --"+prefix+"tls-cert")
}

// DialOption returns the transport credentials for c: TLS, or plaintext
// when --tls-ca is not given.
func (c Client) DialOption() (grpc.DialOption, error) {
	if c.CA == "" {
		if c.Cert != "" || c.Key != "" {
			return nil, errors.New("--tls-cert needs --tls-ca")
		}
		return grpc.WithTransportCredentials(insecure.NewCredentials()), nil
	}
	pool, err := loadPool(c.CA)
	if err != nil {
		return nil, fmt.Errorf("--tls-ca: %w", err)
	}
	cfg := &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	if c.Cert != "" || c.Key != "" {
		pair, err := tls.LoadX509KeyPair(c.Cert, c.Key)
		if err != nil {
			return nil, fmt.Errorf("loading --tls-cert/--tls-key: %w", err)
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	return grpc.WithTransportCredentials(credentials.NewTLS(cfg)), nil
}

func loadPool(path string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s holds no PEM certificate", path)
	}
	return pool, nil
}
