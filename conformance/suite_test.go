package conformance_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vigil-health/vigil/conformance"
	"github.com/vigil-health/vigil/fhirstore/storetest"
	"github.com/vigil-health/vigil/hl7v2"
	"github.com/vigil-health/vigil/mappers/alerts"
	"github.com/vigil-health/vigil/server"
)

// scriptDir holds the TestScript suite Vigil must pass.
var scriptDir = filepath.Join("..", "testdata", "testscripts")

// vigil is an in-process Vigil wired as vigil serve wires it: the alert rules on every
// Observation write, ingest creating unknown patients, and the HL7 v2 bridge.
type vigil struct {
	// Base is the FHIR base URL.
	Base   string
	bridge *server.HL7Bridge
}

// newVigil starts an in-process Vigil on a fresh database of backend b.
func newVigil(t *testing.T, b storetest.Backend) *vigil {
	t.Helper()
	st, _ := storetest.Open(t, b)
	st.AddHook(server.NewAlertHook(alerts.DefaultRules(), storetest.QuietLogger()))
	bridge, err := server.NewHL7Bridge(st, server.HL7Config{Logger: storetest.QuietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	bridge.Start()
	t.Cleanup(bridge.Close)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + l.Addr().String()
	srv := server.New(st, server.Config{BaseURL: base, Logger: storetest.QuietLogger(),
		Ingest: server.IngestConfig{CreatePatients: true}})
	ts := httptest.NewUnstartedServer(srv.Handler())
	ts.Listener.Close()
	ts.Listener = l
	ts.Start()
	t.Cleanup(ts.Close)
	return &vigil{Base: srv.FHIRBase(), bridge: bridge}
}

// hl7Messages are the HL7 v2 fixtures whose resources the scripts in hl7/ read.
var hl7Messages = []string{"adt_a01.hl7", "pcd01_oru_r01_monitor.hl7", "lab_oru_r01.hl7"}

// sendHL7 delivers the hl7Messages through the bridge (the MLLP handler) and checks that
// each was accepted. Device readings are moved to ten minutes ago: the bridge refuses
// readings from the future, as ingest does.
func (v *vigil) sendHL7(t *testing.T) {
	t.Helper()
	recent := time.Now().UTC().Add(-10 * time.Minute)
	for _, name := range hl7Messages {
		raw, err := os.ReadFile(filepath.Join("..", "testdata", "hl7", name))
		if err != nil {
			t.Fatal(err)
		}
		raw = bytes.ReplaceAll(bytes.ReplaceAll(bytes.TrimSpace(raw), []byte("\r\n"), []byte("\r")), []byte("\n"), []byte("\r"))
		raw = bytes.ReplaceAll(raw, []byte("20261125093000+0000"), []byte(recent.Format("20060102150405")+"+0000"))
		raw = bytes.ReplaceAll(raw, []byte("20261125092900+0000"), []byte(recent.Add(-time.Minute).Format("20060102150405")+"+0000"))
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		ack, err := v.bridge.HandleMessage(ctx, raw)
		cancel()
		if err != nil {
			t.Fatalf("HL7 %s: %v", name, err)
		}
		m, err := hl7v2.Parse(ack)
		if err != nil {
			t.Fatalf("HL7 %s: the acknowledgment does not parse: %v", name, err)
		}
		if code := m.Get("MSA-1"); code != "AA" && code != "CA" {
			t.Fatalf("HL7 %s: acknowledged %s, want AA or CA: %q", name, code, ack)
		}
	}
}

// deleteAll deletes resources (Type/id) over HTTP.
func deleteAll(t *testing.T, base string, refs []string) {
	t.Helper()
	for _, ref := range refs {
		req, err := http.NewRequest(http.MethodDelete, base+"/"+ref, nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode/100 != 2 {
			t.Errorf("DELETE %s: %s", ref, resp.Status)
		}
	}
}

// TestSuite runs every fixture of testdata/testscripts against Vigil, on SQLite and (when
// VIGIL_TEST_DATABASE_URL is set) PostgreSQL. Scripts run in parallel: they must not
// depend on each other.
func TestSuite(t *testing.T) {
	scripts, err := conformance.FindScripts(scriptDir)
	if err != nil {
		t.Fatal(err)
	}
	if len(scripts) < 100 {
		t.Errorf("found %d TestScripts in %s, want at least 100", len(scripts), scriptDir)
	}
	for _, b := range storetest.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			v := newVigil(t, b)
			base := v.Base
			// The scripts in hl7/ read what these messages made; the messages' resources
			// are the only ones live before the scripts run, and are removed after them.
			v.sendHL7(t)
			fromHL7 := liveResources(t, base)
			if len(fromHL7) == 0 {
				t.Fatal("the HL7 v2 messages made no resources")
			}
			r := &conformance.Runner{Base: base}
			// The group ends when its parallel subtests have; then nothing may be left.
			t.Run("scripts", func(t *testing.T) { runScripts(t, r, scripts) })
			deleteAll(t, base, fromHL7)
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
