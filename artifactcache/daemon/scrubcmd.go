package daemon

import (
	"context"
	"fmt"
	"io"

	"distbuild/artifactcache/store"
	"distbuild/bytesize"

	"github.com/hashicorp/go-hclog"
)

// Scrub checks a store directory offline (no daemon may have it open):
// it re-hashes every blob, quarantines corrupt ones with the manifests
// naming them, and writes a report to out. It never evicts anything.
func Scrub(ctx context.Context, dir string, logger hclog.Logger, out io.Writer) (store.ScrubReport, error) {
	st, err := store.Open(store.Options{Dir: dir, Logger: logger})
	if err != nil {
		return store.ScrubReport{}, err
	}
	report, err := st.Scrub(ctx)
	if cerr := st.Close(); err == nil {
		err = cerr
	}
	fmt.Fprintf(out, "checked %d blobs (%s): %d corrupt\n", report.Checked, bytesize.Size(report.CheckedBytes), len(report.Corrupt))
	for _, d := range report.Corrupt {
		fmt.Fprintf(out, "corrupt blob, quarantined: %s\n", d)
	}
	for _, k := range report.DroppedManifests {
		fmt.Fprintf(out, "dropped manifest (will be rebuilt): %s\n", k)
	}
	return report, err
}
