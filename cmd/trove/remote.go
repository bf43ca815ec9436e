package main

import (
	"context"
	"errors"
	"time"

	"distbuild/artifactcache/s3store"
	"distbuild/trove"

	"github.com/hashicorp/go-hclog"
	"github.com/spf13/pflag"
)

// remoteFlags say where the cache lives when it is not only in --dir.
type remoteFlags struct {
	store, endpoint, credentials string
}

func (r *remoteFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&r.store, "store", "", "keep the cache in an S3-compatible bucket shared with other troves, s3://BUCKET/PREFIX, with --dir as a bounded (--max-size) read-through cache in front of it (default: the cache is --dir alone)")
	fs.StringVar(&r.endpoint, "s3-endpoint", "", "with --store: the S3 endpoint, http://HOST:PORT or https://HOST:PORT")
	fs.StringVar(&r.credentials, "s3-credentials-file", "", "with --store: the access key, in the AWS shared credentials format ([default] aws_access_key_id, aws_secret_access_key)")
}

// s3OpenTimeout bounds the check, at start, that the bucket can be used.
const s3OpenTimeout = time.Minute

// configure opens the bucket, if one is named, into cfg.Remote.
func (r *remoteFlags) configure(cfg *trove.Config, logger hclog.Logger) error {
	if r.store == "" {
		if r.endpoint != "" || r.credentials != "" {
			return errors.New("--s3-endpoint and --s3-credentials-file go with --store s3://BUCKET/PREFIX")
		}
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), s3OpenTimeout)
	defer cancel()
	remote, err := s3store.Open(ctx, s3store.Config{
		URL: r.store, Endpoint: r.endpoint, CredentialsFile: r.credentials, Logger: logger.Named("s3"),
	})
	if err != nil {
		return err
	}
	cfg.Remote = remote
	logger.Info("the cache is kept in an S3 bucket; the store directory is its local cache", "store", r.store, "endpoint", r.endpoint, "dir", cfg.Dir)
	return nil
}
