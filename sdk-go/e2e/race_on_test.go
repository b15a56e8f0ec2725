//go:build race

package e2e_test

// raceBuild: the tests run with -race, so the runner under test is built with it too.
const raceBuild = true
