// Package skiffv1 is skiffd's API, skiff.v1: the protobuf messages and gRPC
// services generated from skiff.proto (`make proto`), plus the namespace
// metadata helpers that both ends use. It holds no logic.
package skiffv1
