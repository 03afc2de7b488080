package conformance_test

import (
	"context"
	"net"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vigil-health/vigil/conformance"
	"github.com/vigil-health/vigil/fhirstore/storetest"
	"github.com/vigil-health/vigil/server"
)

// scriptDir holds the TestScript suite Vigil must pass.
var scriptDir = filepath.Join("..", "testdata", "testscripts")

// newVigil starts an in-process Vigil on a fresh database of backend b and returns its FHIR
// base URL.
func newVigil(t *testing.T, b storetest.Backend) string {
	t.Helper()
	st, _ := storetest.Open(t, b)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + l.Addr().String()
	srv := server.New(st, server.Config{BaseURL: base, Logger: storetest.QuietLogger()})
	ts := httptest.NewUnstartedServer(srv.Handler())
	ts.Listener.Close()
	ts.Listener = l
	ts.Start()
	t.Cleanup(ts.Close)
	return srv.FHIRBase()
}

// TestSuite runs every fixture of testdata/testscripts against Vigil, on SQLite and (when
// VIGIL_TEST_DATABASE_URL is set) PostgreSQL. Scripts run in parallel: they must not
// depend on each other.
func TestSuite(t *testing.T) {
	scripts, err := conformance.FindScripts(scriptDir)
	if err != nil {
		t.Fatal(err)
	}
	if len(scripts) < 25 {
		t.Errorf("found %d TestScripts in %s, want at least 25", len(scripts), scriptDir)
	}
	for _, b := range storetest.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			base := newVigil(t, b)
			r := &conformance.Runner{Base: base}
			for _, path := range scripts {
				rel, _ := filepath.Rel(scriptDir, path)
				t.Run(filepath.ToSlash(rel), func(t *testing.T) {
					t.Parallel()
					res, err := r.RunFile(context.Background(), path)
					if err != nil {
						t.Fatal(err)
					}
					var sum strings.Builder
					res.WriteSummary(&sum)
					if !res.OK() {
						t.Errorf("TestScript failed:\n%s", sum.String())
					}
					if res.Warnings > 0 {
						t.Logf("warnings:\n%s", sum.String())
					}
					if res.Passed == 0 {
						t.Errorf("TestScript passed no action:\n%s", sum.String())
					}
				})
			}
		})
	}
}
