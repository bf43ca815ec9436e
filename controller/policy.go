package controller

import (
	"strings"

	"distbuild/auth"
)

// Policy is who may call the controller when it requires authentication:
// users submit and follow builds, workers take work, and neither can do
// the other's part.
func Policy(fullMethod string) []auth.Kind {
	switch {
	case strings.HasPrefix(fullMethod, "/distbuild.v1.BuildService/"):
		return []auth.Kind{auth.KindUser}
	case strings.HasPrefix(fullMethod, "/distbuild.v1.WorkerService/"):
		return []auth.Kind{auth.KindWorker}
	}
	return nil
}
