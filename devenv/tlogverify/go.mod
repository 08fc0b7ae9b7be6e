module github.com/trace-stream/devenv/tlogverify

go 1.26.0

require (
	github.com/transparency-dev/formats v0.1.1
	golang.org/x/mod v0.43.0
)
