package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigil-health/vigil/fhirstore"
	"github.com/vigil-health/vigil/fhirstore/storetest"
)

const concurrentWriters = 50

// updateConcurrently sends n updates of Patient/id at once (each with a different body,
// so that each is a real change) and returns their results in request order.
func updateConcurrently(t *testing.T, ts *testServer, id string, n int, hdr ...string) []*result {
	t.Helper()
	results := make([]*result, n)
	errs := make([]error, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		p := patient("Concurrent")
		p["id"] = id
		p["multipleBirthInteger"] = i + 1
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			results[i], errs[i] = ts.try(http.MethodPut, "Patient/"+id, p, hdr...)
		}()
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("update %d: %v", i, err)
		}
	}
	return results
}

// versionsOf returns the versions in the history of Patient/id, oldest first.
func versionsOf(t *testing.T, ts *testServer, id string) []string {
	t.Helper()
	hb := ts.do(t, http.MethodGet, "Patient/"+id+"/_history?_count=1000", nil).history(t)
	var out []string
	for i := len(hb.Entry) - 1; i >= 0; i-- {
		out = append(out, hb.Entry[i].Response.Etag)
	}
	return out
}

func etagsUpTo(n int) []string {
	var out []string
	for v := 1; v <= n; v++ {
		out = append(out, etag(v))
	}
	return out
}

// TestConcurrentIfMatch sends 50 updates of one resource at once, all with If-Match on
// version 1: exactly one wins, the others get 412, and history has versions 1 and 2 only.
func TestConcurrentIfMatch(t *testing.T) {
	forBackends(t, func(t *testing.T, b storetest.Backend) {
		ts := newTestServer(t, b)
		id := ts.create(t, patient("Concurrent"))
		results := updateConcurrently(t, ts, id, concurrentWriters, "If-Match", etag(1))
		won := 0
		for i, r := range results {
			switch r.Status {
			case http.StatusOK:
				won++
				if r.Header.Get("ETag") != etag(2) {
					t.Errorf("winner %d: ETag %q, want %s", i, r.Header.Get("ETag"), etag(2))
				}
			case http.StatusPreconditionFailed:
				r.wantOutcome(t, http.StatusPreconditionFailed, "")
			default:
				t.Errorf("update %d: status %d, want 200 or 412:\n%s", i, r.Status, r.Body)
			}
		}
		if won != 1 {
			t.Errorf("%d updates won, want exactly 1", won)
		}
		if d := diff(etagsUpTo(2), versionsOf(t, ts, id)); d != "" {
			t.Errorf("history versions (-want +got):\n%s", d)
		}
	})
}

// TestConcurrentUpdates sends 50 updates of one resource at once without If-Match: all
// succeed, and they are versions 2..51, each exactly once, without gaps.
func TestConcurrentUpdates(t *testing.T) {
	forBackends(t, func(t *testing.T, b storetest.Backend) {
		ts := newTestServer(t, b)
		id := ts.create(t, patient("Concurrent"))
		results := updateConcurrently(t, ts, id, concurrentWriters)
		var got []string
		for i, r := range results {
			if r.Status != http.StatusOK {
				t.Errorf("update %d: status %d:\n%s", i, r.Status, r.Body)
				continue
			}
			got = append(got, r.Header.Get("ETag"))
		}
		// Order of completion is arbitrary; sort by version number.
		slices.SortFunc(got, func(a, b string) int {
			if len(a) != len(b) {
				return len(a) - len(b)
			}
			return strings.Compare(a, b)
		})
		if d := diff(etagsUpTo(concurrentWriters + 1)[1:], got); d != "" {
			t.Errorf("response ETags (-want +got):\n%s", d)
		}
		if d := diff(etagsUpTo(concurrentWriters+1), versionsOf(t, ts, id)); d != "" {
			t.Errorf("history versions (-want +got):\n%s", d)
		}
		cur := ts.do(t, http.MethodGet, "Patient/"+id, nil)
		if cur.Header.Get("ETag") != etag(concurrentWriters+1) {
			t.Errorf("current ETag = %q, want %s", cur.Header.Get("ETag"), etag(concurrentWriters+1))
		}
	})
}

// TestRestart writes through one server, stops it and closes the store, then opens the
// same database again behind a new server: everything written is served as before, and
// new versions continue the old ones.
func TestRestart(t *testing.T) {
	forBackends(t, func(t *testing.T, b storetest.Backend) {
		dbURL := b.NewURL(t)
		open := func() *fhirstore.Store {
			st, err := fhirstore.Open(context.Background(), dbURL, fhirstore.Options{Logger: storetest.QuietLogger()})
			if err != nil {
				t.Fatalf("open store: %v", err)
			}
			return st
		}

		st1 := open()
		ts1 := startServer(t, st1)
		kept := ts1.create(t, heartRate("98.60", ""))
		p := patient("Restart", mrn+"|restart")
		p["id"] = "restart-1"
		ts1.do(t, http.MethodPut, "Patient/restart-1", p).wantStatus(t, http.StatusCreated)
		p["gender"] = "female"
		ts1.do(t, http.MethodPut, "Patient/restart-1", p).wantStatus(t, http.StatusOK)
		deleted := ts1.create(t, patient("Deleted"))
		ts1.do(t, http.MethodDelete, "Patient/"+deleted, nil).wantStatus(t, http.StatusNoContent)
		before := map[string][]byte{}
		for _, path := range []string{"Observation/" + kept, "Patient/restart-1", "Patient/restart-1/_history/1"} {
			before[path] = ts1.do(t, http.MethodGet, path, nil).Body
		}
		ts1.stop(t)
		if err := st1.Close(); err != nil {
			t.Fatalf("close store: %v", err)
		}
		if _, err := ts1.try(http.MethodGet, "/healthz", nil); err == nil {
			t.Errorf("the first server still answers after Shutdown")
		}

		st2 := open()
		t.Cleanup(func() { st2.Close() })
		ts2 := startServer(t, st2)
		for path, want := range before {
			r := ts2.do(t, http.MethodGet, path, nil)
			r.wantStatus(t, http.StatusOK)
			if d := diff(mustDecode(t, want), r.json(t)); d != "" {
				t.Errorf("%s after restart (-before +after):\n%s", path, d)
			}
		}
		ts2.do(t, http.MethodGet, "Patient/"+deleted, nil).wantOutcome(t, http.StatusGone, "")
		if got := versionsOf(t, ts2, "restart-1"); len(got) != 2 {
			t.Errorf("history of restart-1 after restart: %v, want 2 versions", got)
		}
		// The condition on identifier still finds the resource, and versions continue.
		r := ts2.do(t, http.MethodPost, "Patient", patient("Again", mrn+"|restart"), "If-None-Exist", "identifier="+mrn+"|restart")
		r.wantStatus(t, http.StatusOK)
		if r.json(t)["id"] != "restart-1" {
			t.Errorf("conditional create after restart matched %s", r.Body)
		}
		p["gender"] = "other"
		r = ts2.do(t, http.MethodPut, "Patient/restart-1", p)
		r.wantStatus(t, http.StatusOK)
		if r.Header.Get("ETag") != etag(3) {
			t.Errorf("ETag of the first write after restart = %q, want %s", r.Header.Get("ETag"), etag(3))
		}
	})
}

func mustDecode(t testing.TB, b []byte) map[string]any {
	t.Helper()
	m, err := decode(b)
	if err != nil {
		t.Fatalf("%v: %s", err, b)
	}
	return m
}

// TestConcurrentConditionalWrites sends the same conditional write 20 times at once to two
// servers on one database, as a device retrying a reading would: one creates, the others
// find what it created, and one resource exists. Conditional creates, conditional updates and transactions with
// ifNoneExist all take this path.
func TestConcurrentConditionalWrites(t *testing.T) {
	const n = 20
	cond := "identifier=" + url.QueryEscape(mrn+"|once")
	tests := []struct {
		name string
		send func(ts *testServer, i int) (*result, error)
		// created and found are the statuses of the one that creates and of the others.
		created, found string
	}{
		{"conditional create", func(ts *testServer, i int) (*result, error) {
			return ts.try(http.MethodPost, "Patient", patient("Once", mrn+"|once"), "If-None-Exist", cond)
		}, "201", "200"},
		{"conditional update", func(ts *testServer, i int) (*result, error) {
			p := patient("Once", mrn+"|once")
			p["multipleBirthInteger"] = i + 1
			return ts.try(http.MethodPut, "Patient?"+cond, p)
		}, "201", "200"},
		{"transaction with ifNoneExist", func(ts *testServer, i int) (*result, error) {
			tx := bundleOf("transaction", txEntry("urn:uuid:5d1b7c1e-8f0a-4a57-9c43-2f3b0f6e7a10", "POST", "Patient", patient("Once", mrn+"|once"), "ifNoneExist", cond))
			r, err := ts.try(http.MethodPost, "", tx)
			if err != nil || r.Status != http.StatusOK {
				return r, err
			}
			// Report the entry's status as the request's.
			var rb responseBundle
			if err := json.Unmarshal(r.Body, &rb); err != nil || len(rb.Entry) != 1 {
				return r, fmt.Errorf("bad transaction-response: %v", err)
			}
			code, _, _ := strings.Cut(rb.Entry[0].Response.Status, " ")
			r.Status, _ = strconv.Atoi(code)
			r.Body = rb.Entry[0].Resource
			return r, nil
		}, "201", "200"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			forBackends(t, func(t *testing.T, b storetest.Backend) {
				ts := newTestServer(t, b)
				// A second server process on the same database: the two must behave as one.
				st2, err := fhirstore.Open(context.Background(), ts.DBURL, fhirstore.Options{Logger: storetest.QuietLogger()})
				if err != nil {
					t.Fatalf("second store: %v", err)
				}
				t.Cleanup(func() { st2.Close() })
				servers := []*testServer{ts, startServer(t, st2)}
				results := make([]*result, n)
				errs := make([]error, n)
				start := make(chan struct{})
				var wg sync.WaitGroup
				for i := range n {
					wg.Add(1)
					go func() {
						defer wg.Done()
						<-start
						results[i], errs[i] = tc.send(servers[i%2], i)
					}()
				}
				close(start)
				wg.Wait()
				created := 0
				ids := map[string]bool{}
				for i, r := range results {
					if errs[i] != nil {
						t.Fatalf("request %d: %v", i, errs[i])
					}
					switch strconv.Itoa(r.Status) {
					case tc.created:
						created++
					case tc.found:
					default:
						t.Errorf("request %d: status %d:\n%s", i, r.Status, r.Body)
						continue
					}
					ids[r.json(t)["id"].(string)] = true
				}
				if created != 1 || len(ids) != 1 {
					t.Errorf("%d creates and %d distinct ids, want 1 and 1", created, len(ids))
				}
				hb := ts.do(t, http.MethodGet, "Patient/_history?_count=1000", nil).history(t)
				seen := map[string]bool{}
				for _, e := range hb.Entry {
					seen[e.FullURL] = true
				}
				if len(seen) != 1 {
					t.Errorf("%d Patients stored, want 1", len(seen))
				}
			})
		})
	}
}

// TestConcurrentUpdateAsCreate sends 20 updates of one new id at once: one creates it
// (201), the others update it (200), and the versions are 1..20 without gaps.
func TestConcurrentUpdateAsCreate(t *testing.T) {
	forBackends(t, func(t *testing.T, b storetest.Backend) {
		ts := newTestServer(t, b)
		const n = 20
		results := updateConcurrently(t, ts, "brand-new", n)
		created := 0
		for i, r := range results {
			switch r.Status {
			case http.StatusCreated:
				created++
			case http.StatusOK:
			default:
				t.Errorf("update %d: status %d:\n%s", i, r.Status, r.Body)
			}
		}
		if created != 1 {
			t.Errorf("%d updates answered 201, want 1", created)
		}
		if d := diff(etagsUpTo(n), versionsOf(t, ts, "brand-new")); d != "" {
			t.Errorf("history versions (-want +got):\n%s", d)
		}
	})
}

// TestShutdownFinishesInFlight shuts the server down while a create is inside its store
// transaction (held there by a store hook): Shutdown waits for it, the create commits and
// answers 201, and afterwards the server takes no new connections.
func TestShutdownFinishesInFlight(t *testing.T) {
	forBackends(t, func(t *testing.T, b storetest.Backend) {
		ts := newTestServer(t, b)
		reached, release := make(chan struct{}), make(chan struct{})
		var once sync.Once
		ts.Store.AddHook(fhirstore.HookFunc(func(ctx context.Context, tx *fhirstore.Tx, c fhirstore.Change) error {
			once.Do(func() { close(reached) })
			<-release
			return nil
		}))
		type outcome struct {
			r   *result
			err error
		}
		resc := make(chan outcome, 1)
		go func() {
			r, err := ts.try(http.MethodPost, "Patient", patient("InFlight", mrn+"|inflight"))
			resc <- outcome{r, err}
		}()
		select {
		case <-reached:
		case <-time.After(30 * time.Second):
			close(release)
			t.Fatal("the create never reached the store")
		}
		shutdown := make(chan error, 1)
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			shutdown <- ts.srv.Shutdown(ctx)
		}()
		select {
		case err := <-shutdown:
			t.Errorf("Shutdown returned (%v) while a request was in flight", err)
			shutdown <- err
		case <-time.After(100 * time.Millisecond):
		}
		close(release)
		got := <-resc
		if got.err != nil {
			t.Fatalf("in-flight create: %v", got.err)
		}
		got.r.wantStatus(t, http.StatusCreated)
		if err := <-shutdown; err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		id, _ := got.r.json(t)["id"].(string)
		if _, err := ts.Store.Read(context.Background(), "Patient", id); err != nil {
			t.Errorf("the in-flight create is not stored: %v", err)
		}
		if _, err := ts.try(http.MethodGet, "/healthz", nil); err == nil {
			t.Errorf("the server answers after Shutdown")
		}
	})
}
