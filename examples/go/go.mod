module github.com/ferrogate/ferrogate/examples/go

go 1.26

require github.com/ferrogate/ferrogate/sdk-go v0.0.0

require github.com/google/flatbuffers v25.12.19+incompatible // indirect

replace github.com/ferrogate/ferrogate/sdk-go => ../../sdk-go
