module github.com/ferrogate/ferrogate/sdk-go/officialtest

go 1.26

require (
	github.com/api7/ext-plugin-proto v0.6.1
	github.com/ferrogate/ferrogate/sdk-go v0.0.0
	github.com/google/flatbuffers v25.12.19+incompatible
)

replace github.com/ferrogate/ferrogate/sdk-go => ../../..
