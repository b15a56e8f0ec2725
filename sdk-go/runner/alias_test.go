package runner_test

import "net/http"

type httpWriter = http.ResponseWriter
