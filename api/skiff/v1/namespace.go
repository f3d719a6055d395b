package skiffv1

import (
	"context"

	"google.golang.org/grpc/metadata"
)

// NamespaceKey is the gRPC metadata key that names the namespace a call
// works in.
const NamespaceKey = "skiff-namespace"

// DefaultNamespace is the namespace of calls that name none (the CLI's).
const DefaultNamespace = "default"

// WithNamespace returns a context whose outgoing calls work in ns.
func WithNamespace(ctx context.Context, ns string) context.Context {
	return metadata.AppendToOutgoingContext(ctx, NamespaceKey, ns)
}

// NamespaceFromIncoming returns the namespace an incoming call names, or
// DefaultNamespace. Validation is the server's job.
func NamespaceFromIncoming(ctx context.Context) string {
	md, ok := metadata.FromIncomingContext(ctx)
	if !ok {
		return DefaultNamespace
	}
	if v := md.Get(NamespaceKey); len(v) > 0 && v[len(v)-1] != "" {
		return v[len(v)-1]
	}
	return DefaultNamespace
}
