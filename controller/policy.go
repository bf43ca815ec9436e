package controller

import (
	"strings"

	"distbuild/auth"
	"distbuild/internal/observability"
)

// Policy is who may call the controller when it requires authentication:
// users submit and follow builds, workers take work, and neither can do
// the other's part. Health checks are open to anyone (probes carry no
// token); reflection, which only describes the API, to every registered
// worker and user.
func Policy(fullMethod string) []auth.Kind {
	switch {
	case observability.IsHealth(fullMethod):
		return []auth.Kind{auth.Anyone}
	case observability.IsReflection(fullMethod):
		return []auth.Kind{auth.KindUser, auth.KindWorker}
	case strings.HasPrefix(fullMethod, "/distbuild.v1.BuildService/"):
		return []auth.Kind{auth.KindUser}
	case strings.HasPrefix(fullMethod, "/distbuild.v1.WorkerService/"):
		return []auth.Kind{auth.KindWorker}
	}
	return nil
}
