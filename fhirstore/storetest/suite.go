package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/vigil-health/vigil/fhirstore"
)

// Run runs the conformance suite against backend b. Every backend must pass all of it.
func Run(t *testing.T, b Backend) {
	tests := []struct {
		name string
		fn   func(t *testing.T, st *fhirstore.Store, url string)
	}{
		{"CRUD", testCRUD},
		{"UpdateAsCreate", testUpdateAsCreate},
		{"CreateConflict", testCreateConflict},
		{"DeleteRules", testDeleteRules},
		{"History", testHistory},
		{"HistoryPagingWhileWriting", testHistoryPaging},
		{"HistoryAt", testHistoryAt},
		{"FindByIdentifier", testFindByIdentifier},
		{"TransactionRollback", testRollback},
		{"ConcurrentIfMatch", testConcurrentIfMatch},
		{"ConcurrentUpdates", testConcurrentUpdates},
		{"Hooks", testHooks},
		{"Restart", testRestart},
		{"CreateMany", testCreateMany},
		{"BeforeCommit", testBeforeCommit},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			st, url := Open(t, b)
			tc.fn(t, st, url)
		})
	}
}

func obs(code string, ids ...string) map[string]any {
	m := map[string]any{
		"resourceType": "Observation",
		"status":       "final",
		"code":         map[string]any{"coding": []any{map[string]any{"system": "http://loinc.org", "code": code}}},
	}
	if len(ids) > 0 {
		var idents []any
		for i := 0; i+1 < len(ids); i += 2 {
			idents = append(idents, map[string]any{"system": ids[i], "value": ids[i+1]})
		}
		m["identifier"] = idents
	}
	return m
}

func create(t *testing.T, st *fhirstore.Store, body map[string]any) *fhirstore.Resource {
	t.Helper()
	var res *fhirstore.Resource
	err := st.InTx(context.Background(), func(tx *fhirstore.Tx) error {
		var err error
		res, err = tx.Create(context.Background(), body["resourceType"].(string), body)
		return err
	})
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	return res
}

func put(st *fhirstore.Store, typ, id string, body map[string]any, ifMatch int64) (*fhirstore.Resource, error) {
	var res *fhirstore.Resource
	err := st.InTx(context.Background(), func(tx *fhirstore.Tx) error {
		var err error
		res, _, err = tx.Update(context.Background(), typ, id, "PUT", func(cur *fhirstore.Resource) (map[string]any, error) {
			if ifMatch > 0 && (cur == nil || cur.Version != ifMatch) {
				return nil, fhirstore.ErrVersionConflict
			}
			return copyMap(body), nil
		})
		return err
	})
	return res, err
}

func copyMap(m map[string]any) map[string]any {
	b, _ := json.Marshal(m)
	var out map[string]any
	json.Unmarshal(b, &out)
	return out
}

func decode(t *testing.T, b []byte) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("stored body is not JSON: %v: %s", err, b)
	}
	return m
}

func testCRUD(t *testing.T, st *fhirstore.Store, _ string) {
	ctx := context.Background()
	c := create(t, st, obs("8867-4"))
	if c.Version != 1 || c.ID == "" || !fhirstore.ValidID(c.ID) {
		t.Fatalf("create gave version %d id %q", c.Version, c.ID)
	}
	got, err := st.Read(ctx, "Observation", c.ID)
	if err != nil {
		t.Fatal(err)
	}
	m := decode(t, got.Body)
	meta := m["meta"].(map[string]any)
	if m["id"] != c.ID || meta["versionId"] != "1" || meta["lastUpdated"] != fhirstore.FormatInstant(c.LastUpdated) {
		t.Fatalf("read body id/meta wrong: %s", got.Body)
	}
	u, err := put(st, "Observation", c.ID, obs("9279-1"), 0)
	if err != nil {
		t.Fatal(err)
	}
	if u.Version != 2 {
		t.Fatalf("update version = %d, want 2", u.Version)
	}
	got, _ = st.Read(ctx, "Observation", c.ID)
	if code := decode(t, got.Body)["code"].(map[string]any)["coding"].([]any)[0].(map[string]any)["code"]; code != "9279-1" {
		t.Fatalf("read after update: code %v", code)
	}
	v1, err := st.VRead(ctx, "Observation", c.ID, 1)
	if err != nil {
		t.Fatal(err)
	}
	if code := decode(t, v1.Body)["code"].(map[string]any)["coding"].([]any)[0].(map[string]any)["code"]; code != "8867-4" {
		t.Fatalf("vread 1: code %v", code)
	}
	if _, err := st.VRead(ctx, "Observation", c.ID, 9); !errors.Is(err, fhirstore.ErrNotFound) {
		t.Fatalf("vread 9: %v, want ErrNotFound", err)
	}
	err = st.InTx(ctx, func(tx *fhirstore.Tx) error {
		_, err := tx.Delete(ctx, "Observation", c.ID, nil)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	r, err := st.Read(ctx, "Observation", c.ID)
	if !errors.Is(err, fhirstore.ErrGone) || r.Version != 3 {
		t.Fatalf("read after delete: %v (version %v), want ErrGone at version 3", err, r)
	}
	if _, err := st.VRead(ctx, "Observation", c.ID, 3); !errors.Is(err, fhirstore.ErrGone) {
		t.Fatalf("vread deletion: %v, want ErrGone", err)
	}
	if _, err := st.Read(ctx, "Observation", "nope"); !errors.Is(err, fhirstore.ErrNotFound) {
		t.Fatalf("read missing: %v", err)
	}
	// Re-creation after delete continues the version sequence.
	u, err = put(st, "Observation", c.ID, obs("8867-4"), 0)
	if err != nil || u.Version != 4 {
		t.Fatalf("re-create: version %v err %v, want 4", u, err)
	}
}

func testUpdateAsCreate(t *testing.T, st *fhirstore.Store, _ string) {
	var created bool
	err := st.InTx(context.Background(), func(tx *fhirstore.Tx) error {
		var err error
		_, created, err = tx.Update(context.Background(), "Patient", "p-1", "PUT", func(cur *fhirstore.Resource) (map[string]any, error) {
			if cur != nil {
				t.Errorf("current of a new id should be nil")
			}
			return map[string]any{"resourceType": "Patient", "active": true}, nil
		})
		return err
	})
	if err != nil || !created {
		t.Fatalf("update-as-create: created=%v err=%v", created, err)
	}
	r, err := st.Read(context.Background(), "Patient", "p-1")
	if err != nil || r.Version != 1 {
		t.Fatalf("read: %v %v", r, err)
	}
	// Invalid ids are refused.
	if _, err := put(st, "Patient", "bad id!", map[string]any{"resourceType": "Patient"}, 0); !errors.Is(err, fhirstore.ErrInvalid) {
		t.Fatalf("bad id: %v, want ErrInvalid", err)
	}
	// A body whose resourceType differs from the target type is refused.
	if _, err := put(st, "Patient", "p-2", map[string]any{"resourceType": "Observation"}, 0); !errors.Is(err, fhirstore.ErrInvalid) {
		t.Fatalf("type mismatch: %v, want ErrInvalid", err)
	}
}

func testCreateConflict(t *testing.T, st *fhirstore.Store, _ string) {
	ctx := context.Background()
	if _, err := put(st, "Device", "d1", map[string]any{"resourceType": "Device"}, 0); err != nil {
		t.Fatal(err)
	}
	err := st.InTx(ctx, func(tx *fhirstore.Tx) error {
		_, err := tx.CreateWithID(ctx, "Device", "d1", map[string]any{"resourceType": "Device"})
		return err
	})
	if !errors.Is(err, fhirstore.ErrConflict) {
		t.Fatalf("create of a taken id: %v, want ErrConflict", err)
	}
}

func testDeleteRules(t *testing.T, st *fhirstore.Store, _ string) {
	ctx := context.Background()
	del := func(id string) (*fhirstore.Resource, error) {
		var r *fhirstore.Resource
		err := st.InTx(ctx, func(tx *fhirstore.Tx) error {
			var err error
			r, err = tx.Delete(ctx, "Patient", id, nil)
			return err
		})
		return r, err
	}
	if _, err := del("missing"); !errors.Is(err, fhirstore.ErrNotFound) {
		t.Fatalf("delete missing: %v", err)
	}
	c := create(t, st, map[string]any{"resourceType": "Patient"})
	if r, err := del(c.ID); err != nil || r.Version != 2 {
		t.Fatalf("delete: %v %v", r, err)
	}
	// A second delete writes no new version.
	if r, err := del(c.ID); !errors.Is(err, fhirstore.ErrGone) || r.Version != 2 {
		t.Fatalf("second delete: %v %v, want ErrGone at version 2", r, err)
	}
	page, err := st.History(ctx, fhirstore.HistoryQuery{Type: "Patient", ID: c.ID})
	if err != nil || page.Total != 2 {
		t.Fatalf("history after double delete: %+v %v", page, err)
	}
}

func testHistory(t *testing.T, st *fhirstore.Store, _ string) {
	ctx := context.Background()
	a := create(t, st, obs("1"))
	put(st, "Observation", a.ID, obs("2"), 0)
	b := create(t, st, map[string]any{"resourceType": "Patient"})
	put(st, "Observation", a.ID, obs("3"), 0)

	inst, err := st.History(ctx, fhirstore.HistoryQuery{Type: "Observation", ID: a.ID})
	if err != nil {
		t.Fatal(err)
	}
	if inst.Total != 3 || len(inst.Entries) != 3 || inst.Entries[0].Version != 3 || inst.Entries[2].Version != 1 {
		t.Fatalf("instance history: total %d entries %d", inst.Total, len(inst.Entries))
	}
	typ, _ := st.History(ctx, fhirstore.HistoryQuery{Type: "Observation"})
	if typ.Total != 3 {
		t.Fatalf("type history total %d, want 3", typ.Total)
	}
	sys, _ := st.History(ctx, fhirstore.HistoryQuery{})
	if sys.Total != 4 || sys.Entries[1].ID != b.ID {
		t.Fatalf("system history: total %d, second %s want %s", sys.Total, sys.Entries[1].ID, b.ID)
	}
	// _since excludes versions written before it.
	since, _ := st.History(ctx, fhirstore.HistoryQuery{Since: sys.Entries[0].LastUpdated.Add(time.Millisecond)})
	if since.Total != 0 {
		t.Fatalf("since after newest: %d entries", since.Total)
	}
	since, _ = st.History(ctx, fhirstore.HistoryQuery{Since: a.LastUpdated})
	if since.Total != 4 {
		t.Fatalf("since first: %d entries, want 4", since.Total)
	}
}

func testHistoryPaging(t *testing.T, st *fhirstore.Store, _ string) {
	ctx := context.Background()
	for i := 0; i < 25; i++ {
		create(t, st, map[string]any{"resourceType": "Device"})
	}
	seen := map[string]bool{}
	var before int64
	pages := 0
	for {
		page, err := st.History(ctx, fhirstore.HistoryQuery{Type: "Device", Count: 10, Before: before})
		if err != nil {
			t.Fatal(err)
		}
		pages++
		for _, e := range page.Entries {
			if seen[e.ID] {
				t.Fatalf("entry %s seen twice while paging", e.ID)
			}
			seen[e.ID] = true
		}
		// Writes between pages must not shift the walk.
		create(t, st, map[string]any{"resourceType": "Device"})
		if page.Next == 0 {
			break
		}
		before = page.Next
	}
	if len(seen) != 25 || pages != 3 {
		t.Fatalf("walked %d entries in %d pages, want 25 in 3", len(seen), pages)
	}
}

func testHistoryAt(t *testing.T, st *fhirstore.Store, _ string) {
	ctx := context.Background()
	clockStore := st
	a := create(t, clockStore, obs("1"))
	time.Sleep(5 * time.Millisecond)
	v2, _ := put(st, "Observation", a.ID, obs("2"), 0)
	time.Sleep(5 * time.Millisecond)
	put(st, "Observation", a.ID, obs("3"), 0)
	page, err := st.History(ctx, fhirstore.HistoryQuery{Type: "Observation", ID: a.ID, At: v2.LastUpdated.Add(time.Millisecond)})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Entries) != 1 || page.Entries[0].Version != 2 {
		t.Fatalf("_at between v2 and v3: %d entries (first version %v), want only version 2", len(page.Entries), page.Entries)
	}
}

func testFindByIdentifier(t *testing.T, st *fhirstore.Store, _ string) {
	ctx := context.Background()
	a := create(t, st, obs("1", "urn:sys", "A1", "urn:other", "X"))
	create(t, st, obs("1", "urn:sys2", "A1"))
	find := func(system string, systemSet bool, value string) []string {
		var out []string
		st.InTx(ctx, func(tx *fhirstore.Tx) error {
			var err error
			out, err = tx.MatchIdentifier(ctx, "Observation", system, systemSet, value, 10)
			if err != nil {
				t.Fatal(err)
			}
			return nil
		})
		return out
	}
	tests := []struct {
		name      string
		system    string
		systemSet bool
		value     string
		want      int
	}{
		{"system and value", "urn:sys", true, "A1", 1},
		{"value in any system", "", false, "A1", 2},
		{"no system", "", true, "A1", 0},
		{"other value", "", false, "X", 1},
		{"missing", "", false, "nope", 0},
	}
	for _, tc := range tests {
		if got := find(tc.system, tc.systemSet, tc.value); len(got) != tc.want {
			t.Errorf("%s: %d matches, want %d", tc.name, len(got), tc.want)
		}
	}
	// Updates replace index rows; deletes remove them.
	put(st, "Observation", a.ID, obs("1", "urn:sys", "B2"), 0)
	if got := find("", false, "X"); len(got) != 0 {
		t.Errorf("old identifier still found after update")
	}
	st.InTx(ctx, func(tx *fhirstore.Tx) error { _, err := tx.Delete(ctx, "Observation", a.ID, nil); return err })
	if got := find("", false, "B2"); len(got) != 0 {
		t.Errorf("deleted resource still found")
	}
}

func testRollback(t *testing.T, st *fhirstore.Store, _ string) {
	ctx := context.Background()
	var id string
	boom := errors.New("boom")
	err := st.InTx(ctx, func(tx *fhirstore.Tx) error {
		r, err := tx.Create(ctx, "Patient", map[string]any{"resourceType": "Patient"})
		if err != nil {
			return err
		}
		id = r.ID
		if _, _, err := tx.Update(ctx, "Patient", "fixed", "PUT", func(*fhirstore.Resource) (map[string]any, error) {
			return map[string]any{"resourceType": "Patient"}, nil
		}); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("InTx returned %v, want the function's error", err)
	}
	for _, id := range []string{id, "fixed"} {
		if _, err := st.Read(ctx, "Patient", id); !errors.Is(err, fhirstore.ErrNotFound) {
			t.Errorf("Patient/%s after rollback: %v, want ErrNotFound", id, err)
		}
	}
	page, _ := st.History(ctx, fhirstore.HistoryQuery{})
	if page.Total != 0 {
		t.Errorf("history after rollback has %d entries", page.Total)
	}
}

func testConcurrentIfMatch(t *testing.T, st *fhirstore.Store, _ string) {
	c := create(t, st, obs("1"))
	var wg sync.WaitGroup
	errs := make([]error, 50)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = put(st, "Observation", c.ID, obs(fmt.Sprint(i)), 1)
		}()
	}
	wg.Wait()
	wins, conflicts := 0, 0
	for _, err := range errs {
		switch {
		case err == nil:
			wins++
		case errors.Is(err, fhirstore.ErrVersionConflict):
			conflicts++
		default:
			t.Errorf("unexpected error: %v", err)
		}
	}
	if wins != 1 || conflicts != 49 {
		t.Fatalf("%d wins, %d conflicts; want 1 and 49", wins, conflicts)
	}
	r, _ := st.Read(context.Background(), "Observation", c.ID)
	if r.Version != 2 {
		t.Fatalf("version after race %d, want 2", r.Version)
	}
}

func testConcurrentUpdates(t *testing.T, st *fhirstore.Store, _ string) {
	c := create(t, st, obs("1"))
	var wg sync.WaitGroup
	versions := make([]int64, 50)
	for i := range versions {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := put(st, "Observation", c.ID, obs(fmt.Sprint(i)), 0)
			if err != nil {
				t.Errorf("update %d: %v", i, err)
				return
			}
			versions[i] = r.Version
		}()
	}
	wg.Wait()
	seen := map[int64]bool{}
	for _, v := range versions {
		seen[v] = true
	}
	for v := int64(2); v <= 51; v++ {
		if !seen[v] {
			t.Fatalf("version %d missing: versions must be 2..51 without gaps, got %v", v, versions)
		}
	}
	page, _ := st.History(context.Background(), fhirstore.HistoryQuery{Type: "Observation", ID: c.ID, Count: 100})
	if page.Total != 51 {
		t.Fatalf("history has %d versions, want 51", page.Total)
	}
}

func testHooks(t *testing.T, st *fhirstore.Store, _ string) {
	ctx := context.Background()
	var mu sync.Mutex
	var seen []string
	st.AddHook(fhirstore.HookFunc(func(ctx context.Context, tx *fhirstore.Tx, c fhirstore.Change) error {
		mu.Lock()
		seen = append(seen, c.Resource.Type)
		mu.Unlock()
		if c.Resource.Type == "Observation" && !c.Resource.Deleted {
			// A hook writes in the same transaction (as alert rules do).
			_, err := tx.Create(ctx, "DetectedIssue", map[string]any{"resourceType": "DetectedIssue", "status": "preliminary"})
			return err
		}
		if c.Resource.Type == "Patient" {
			return errors.New("hook refused")
		}
		return nil
	}))
	create(t, st, obs("1"))
	page, _ := st.History(ctx, fhirstore.HistoryQuery{Type: "DetectedIssue"})
	if page.Total != 1 {
		t.Fatalf("hook write: %d DetectedIssues, want 1", page.Total)
	}
	err := st.InTx(ctx, func(tx *fhirstore.Tx) error {
		_, err := tx.Create(ctx, "Patient", map[string]any{"resourceType": "Patient"})
		return err
	})
	if err == nil {
		t.Fatal("a hook error must fail the write")
	}
	page, _ = st.History(ctx, fhirstore.HistoryQuery{Type: "Patient"})
	if page.Total != 0 {
		t.Fatalf("hook error left %d Patient versions", page.Total)
	}
}

func testRestart(t *testing.T, st *fhirstore.Store, url string) {
	ctx := context.Background()
	c := create(t, st, obs("8867-4"))
	put(st, "Observation", c.ID, obs("9279-1"), 0)
	st.Close()
	st2, err := fhirstore.Open(ctx, url, fhirstore.Options{Logger: QuietLogger()})
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer st2.Close()
	r, err := st2.Read(ctx, "Observation", c.ID)
	if err != nil || r.Version != 2 {
		t.Fatalf("read after restart: %v %v", r, err)
	}
	if _, err := st2.VRead(ctx, "Observation", c.ID, 1); err != nil {
		t.Fatalf("vread after restart: %v", err)
	}
}

func testCreateMany(t *testing.T, st *fhirstore.Store, _ string) {
	ctx := context.Background()
	var hooked []string
	st.AddHook(fhirstore.HookFunc(func(ctx context.Context, tx *fhirstore.Tx, c fhirstore.Change) error {
		hooked = append(hooked, c.Resource.ID)
		return nil
	}))
	var made []*fhirstore.Resource
	err := st.InTx(ctx, func(tx *fhirstore.Tx) error {
		var err error
		made, err = tx.CreateMany(ctx, "Observation", nil, []map[string]any{
			obs("1", "urn:r", "a"), obs("2", "urn:r", "b"), obs("3", "urn:r", "c"),
		})
		return err
	})
	if err != nil || len(made) != 3 {
		t.Fatalf("CreateMany: %d resources, %v", len(made), err)
	}
	for i, r := range made {
		got, err := st.Read(ctx, "Observation", r.ID)
		if err != nil || got.Version != 1 {
			t.Fatalf("read %d: %v %v", i, got, err)
		}
		if code := decode(t, got.Body)["code"].(map[string]any)["coding"].([]any)[0].(map[string]any)["code"]; code != fmt.Sprint(i+1) {
			t.Errorf("resource %d has code %v: order not kept", i, code)
		}
		if hooked[i] != r.ID {
			t.Errorf("hook %d ran for %s, want %s", i, hooked[i], r.ID)
		}
	}
	page, _ := st.History(ctx, fhirstore.HistoryQuery{Type: "Observation"})
	if page.Total != 3 {
		t.Fatalf("history has %d versions, want 3", page.Total)
	}
	var found map[string]string
	st.InTx(ctx, func(tx *fhirstore.Tx) error {
		found, err = tx.MatchIdentifiers(ctx, "Observation", "urn:r", []string{"a", "c", "zz"})
		return err
	})
	if err != nil || len(found) != 2 || found["a"] != made[0].ID || found["c"] != made[2].ID {
		t.Fatalf("MatchIdentifiers: %v %v", found, err)
	}
}

func testBeforeCommit(t *testing.T, st *fhirstore.Store, _ string) {
	ctx := context.Background()
	// A function registered before the commit writes in the same transaction.
	err := st.InTx(ctx, func(tx *fhirstore.Tx) error {
		tx.BeforeCommit(func(ctx context.Context) error {
			_, _, err := tx.Update(ctx, "Patient", "late", "PUT", func(*fhirstore.Resource) (map[string]any, error) {
				return map[string]any{"resourceType": "Patient"}, nil
			})
			return err
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Read(ctx, "Patient", "late"); err != nil {
		t.Fatalf("the before-commit write is missing: %v", err)
	}
	// It does not run when the transaction fails, and its failure fails the transaction.
	ran := false
	err = st.InTx(ctx, func(tx *fhirstore.Tx) error {
		tx.BeforeCommit(func(context.Context) error { ran = true; return nil })
		return errors.New("boom")
	})
	if err == nil || ran {
		t.Fatalf("failed transaction: err %v, before-commit ran %v", err, ran)
	}
	err = st.InTx(ctx, func(tx *fhirstore.Tx) error {
		if _, err := tx.Create(ctx, "Patient", map[string]any{"resourceType": "Patient", "active": true}); err != nil {
			return err
		}
		tx.BeforeCommit(func(context.Context) error { return errors.New("refused") })
		return nil
	})
	if err == nil {
		t.Fatal("a before-commit error must fail the transaction")
	}
	page, _ := st.History(ctx, fhirstore.HistoryQuery{Type: "Patient"})
	if page.Total != 1 {
		t.Fatalf("%d Patient versions, want only the first transaction's", page.Total)
	}
}
