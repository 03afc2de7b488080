package conformance_test

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sort"
	"strconv"
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
			// The group ends when its parallel subtests have; then nothing may be left.
			t.Run("scripts", func(t *testing.T) { runScripts(t, r, scripts) })
			if left := liveResources(t, base); len(left) > 0 {
				t.Errorf("the scripts are not self-cleaning: still live after the suite: %v", left)
			}
		})
	}
}

func runScripts(t *testing.T, r *conformance.Runner, scripts []string) {
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
}

// liveResources pages through the system history and returns the resources whose newest
// version is not a deletion.
func liveResources(t *testing.T, base string) []string {
	t.Helper()
	type version struct {
		n       int
		deleted bool
	}
	newest := map[string]version{}
	next := base + "/_history?_count=500"
	for pages := 0; next != "" && pages < 1000; pages++ {
		resp, err := http.Get(next)
		if err != nil {
			t.Fatal(err)
		}
		var b struct {
			Link  []struct{ Relation, URL string }
			Entry []struct {
				FullURL  string `json:"fullUrl"`
				Request  struct{ Method string }
				Response struct{ Etag string }
			}
		}
		err = json.NewDecoder(resp.Body).Decode(&b)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("system history: status %d, %v", resp.StatusCode, err)
		}
		next = ""
		for _, l := range b.Link {
			if l.Relation == "next" {
				next = l.URL
			}
		}
		for _, e := range b.Entry {
			n, _ := strconv.Atoi(strings.Trim(strings.TrimPrefix(e.Response.Etag, "W/"), `"`))
			key := strings.TrimPrefix(e.FullURL, base+"/")
			if v, ok := newest[key]; !ok || n > v.n {
				newest[key] = version{n, e.Request.Method == http.MethodDelete}
			}
		}
	}
	var left []string
	for k, v := range newest {
		if !v.deleted {
			left = append(left, k)
		}
	}
	sort.Strings(left)
	return left
}
