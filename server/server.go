// Package server holds skiffd's gRPC services: thin adapters from the
// skiff.v1 API to the engine's services. It owns the translation of API
// messages to engine calls, the namespace of each call, and the mapping of
// error classes to gRPC codes (errdefs/errgrpc); it must not hold engine
// logic or state of its own.
package server

import (
	"context"
	"log/slog"
	"time"

	skiffv1 "github.com/skiff-containers/skiff/api/skiff/v1"
	"github.com/skiff-containers/skiff/engine/metadata"
	"github.com/skiff-containers/skiff/errdefs/errgrpc"
	"google.golang.org/grpc"
)

// Namespace returns the validated namespace of an incoming call.
func Namespace(ctx context.Context) (string, error) {
	ns := skiffv1.NamespaceFromIncoming(ctx)
	if err := metadata.ValidateNamespace(ns); err != nil {
		return "", err
	}
	return ns, nil
}

// UnaryInterceptor maps a handler's error to its gRPC code and logs calls.
func UnaryInterceptor(log *slog.Logger) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		start := time.Now()
		resp, err := handler(ctx, req)
		logCall(ctx, log, info.FullMethod, start, err)
		return resp, errgrpc.ToGRPC(err)
	}
}

// StreamInterceptor maps a stream handler's error to its gRPC code and logs
// calls.
func StreamInterceptor(log *slog.Logger) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		start := time.Now()
		err := handler(srv, ss)
		logCall(ss.Context(), log, info.FullMethod, start, err)
		return errgrpc.ToGRPC(err)
	}
}

func logCall(ctx context.Context, log *slog.Logger, method string, start time.Time, err error) {
	if log == nil {
		return
	}
	attrs := []any{"method", method, "namespace", skiffv1.NamespaceFromIncoming(ctx), "duration", time.Since(start)}
	if err != nil {
		log.Info("call failed", append(attrs, "code", errgrpc.Code(err).String(), "error", err)...)
		return
	}
	log.Debug("call", attrs...)
}
