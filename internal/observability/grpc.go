// Package observability holds what every daemon offers the people and
// tools that watch it: gRPC health and reflection on each gRPC server, and
// a Prometheus registry served at /metrics.
package observability

import (
	"sort"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"
)

// Method prefixes of the introspection services, for authentication
// policies: health is open to anyone (load balancers and probes carry no
// token), reflection follows the rules of the API it describes.
const (
	HealthMethods        = "/grpc.health.v1.Health/"
	ReflectionMethods    = "/grpc.reflection.v1.ServerReflection/"
	ReflectionMethodsOld = "/grpc.reflection.v1alpha.ServerReflection/"
)

// IsHealth reports whether fullMethod belongs to the health service.
func IsHealth(fullMethod string) bool { return strings.HasPrefix(fullMethod, HealthMethods) }

// IsReflection reports whether fullMethod belongs to either version of
// the reflection service (grpcurl asks v1 first, older tools v1alpha).
func IsReflection(fullMethod string) bool {
	return strings.HasPrefix(fullMethod, ReflectionMethods) || strings.HasPrefix(fullMethod, ReflectionMethodsOld)
}

// Health is the health service of one gRPC server. It answers for the
// server as a whole (the empty service name) and for each of the server's
// own services.
type Health struct {
	srv      *health.Server
	services []string
}

// Register adds the health and reflection services to s. Call it after
// s's own services are registered: health names exactly those, and they
// start SERVING.
func Register(s *grpc.Server) *Health {
	h := &Health{srv: health.NewServer(), services: []string{""}}
	for name := range s.GetServiceInfo() {
		h.services = append(h.services, name)
	}
	sort.Strings(h.services)
	healthpb.RegisterHealthServer(s, h.srv)
	reflection.Register(s)
	h.SetServing(true)
	return h
}

// SetServing makes every service of the server SERVING or NOT_SERVING,
// e.g. while its store cannot be used.
func (h *Health) SetServing(ok bool) {
	st := healthpb.HealthCheckResponse_NOT_SERVING
	if ok {
		st = healthpb.HealthCheckResponse_SERVING
	}
	for _, name := range h.services {
		h.srv.SetServingStatus(name, st)
	}
}

// Shutdown makes every service NOT_SERVING for good: the daemon is going
// away, so clients and load balancers should look elsewhere now rather
// than when the connection drops.
func (h *Health) Shutdown() { h.srv.Shutdown() }
