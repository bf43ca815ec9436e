// Module protoc pins the protoc plugins that generate distbuild's Go code.
// It is separate from tools/buf so the plugin versions are exactly the
// released ones the main module's protobuf and grpc runtimes match.
module distbuild/tools/protoc

go 1.26

tool (
	google.golang.org/grpc/cmd/protoc-gen-go-grpc
	google.golang.org/protobuf/cmd/protoc-gen-go
)

require (
	google.golang.org/grpc/cmd/protoc-gen-go-grpc v1.6.2 // indirect
	google.golang.org/protobuf v1.36.12 // indirect
)
