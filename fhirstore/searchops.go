package fhirstore

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

// initSearch wires the search machinery into a new store: custom SearchParameter
// resources (status=active) written through the store are checked in the write
// transaction and registered once it commits; updating or deleting one unregisters the
// previous definition.
func (s *Store) initSearch() {
	ix, ok := s.indexer.(*SearchIndexer)
	if !ok {
		return
	}
	s.AddHook(HookFunc(func(ctx context.Context, tx *Tx, c Change) error {
		if c.Resource == nil || c.Resource.Type != "SearchParameter" {
			return nil
		}
		if c.Previous != nil && (c.Resource.Deleted || c.Previous.Body != nil) {
			// The old definition goes (a new one, if any, is registered below).
			var old map[string]any
			if err := json.Unmarshal(c.Previous.Body, &old); err == nil {
				tx.AfterCommit(func() {
					if err := ix.Registry.Unregister(old); err != nil {
						s.log.Warn("search parameter not unregistered", "id", c.Resource.ID, "error", err)
					}
				})
			}
		}
		if c.Resource.Deleted {
			return nil
		}
		var sp map[string]any
		if err := json.Unmarshal(c.Resource.Body, &sp); err != nil {
			return fmt.Errorf("fhirstore: SearchParameter/%s: %w", c.Resource.ID, err)
		}
		// Check on a throw-away registry so a bad definition fails the write.
		probe := &Registry{snap: ix.Registry.snapshot()}
		if err := probe.Register(sp); err != nil {
			return fmt.Errorf("SearchParameter/%s: %w", c.Resource.ID, errors.Join(ErrInvalid, err))
		}
		tx.AfterCommit(func() {
			if err := ix.Registry.Register(sp); err != nil {
				s.log.Warn("search parameter not registered", "id", c.Resource.ID, "error", err)
			}
		})
		return nil
	}))
}

// LoadSearchParameters registers the active SearchParameter resources already stored;
// Open calls it, so custom parameters survive a restart.
func (s *Store) LoadSearchParameters(ctx context.Context) error {
	if _, ok := s.indexer.(*SearchIndexer); !ok {
		return nil
	}
	rows, err := s.db.QueryContext(ctx, s.d.rebind(`SELECT body FROM resource WHERE type = 'SearchParameter' AND deleted = 0 ORDER BY rid`))
	if err != nil {
		return fmt.Errorf("fhirstore: load search parameters: %w", err)
	}
	defer rows.Close()
	reg := s.registry()
	for rows.Next() {
		var body string
		if err := rows.Scan(&body); err != nil {
			return fmt.Errorf("fhirstore: load search parameters: %w", err)
		}
		var sp map[string]any
		if err := json.Unmarshal([]byte(body), &sp); err != nil {
			continue
		}
		if err := reg.Register(sp); err != nil {
			s.log.Warn("stored search parameter not registered", "error", err)
		}
	}
	return rows.Err()
}

// reindexBatch is how many resources one Reindex transaction rebuilds.
const reindexBatch = 200

// Reindex rebuilds the index rows of the live resources of typ (every type when typ is
// empty) in batches of one transaction each, calling progress (when not nil) after each
// batch with the number done so far and the total.
func (s *Store) Reindex(ctx context.Context, typ string, progress func(done, total int)) error {
	countQ := `SELECT COUNT(*) FROM resource WHERE deleted = 0`
	var cargs []any
	if typ != "" {
		countQ += ` AND type = ?`
		cargs = append(cargs, typ)
	}
	var total int
	if err := s.db.QueryRowContext(ctx, s.d.rebind(countQ), cargs...).Scan(&total); err != nil {
		return fmt.Errorf("fhirstore: reindex count: %w", err)
	}
	done := 0
	var after int64
	for {
		type item struct {
			rid  int64
			typ  string
			id   string
			body string
		}
		// Pick the next batch of row ids; the bodies are read (and locked) inside the
		// write transaction, so a concurrent update is never indexed from a stale body.
		q := `SELECT rid FROM resource WHERE deleted = 0 AND rid > ?`
		args := []any{after}
		if typ != "" {
			q += ` AND type = ?`
			args = append(args, typ)
		}
		q += ` ORDER BY rid LIMIT ?`
		args = append(args, reindexBatch)
		rows, err := s.db.QueryContext(ctx, s.d.rebind(q), args...)
		if err != nil {
			return fmt.Errorf("fhirstore: reindex: %w", err)
		}
		var rids []any
		for rows.Next() {
			var rid int64
			if err := rows.Scan(&rid); err != nil {
				rows.Close()
				return fmt.Errorf("fhirstore: reindex: %w", err)
			}
			rids = append(rids, rid)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("fhirstore: reindex: %w", err)
		}
		if len(rids) == 0 {
			return nil
		}
		err = s.InTx(ctx, func(tx *Tx) error {
			rows, err := tx.query(ctx, `SELECT rid, type, id, body FROM resource WHERE deleted = 0 AND rid IN (`+placeholders(len(rids))+`)`+tx.s.d.forUpdate(), rids...)
			if err != nil {
				return fmt.Errorf("fhirstore: reindex: %w", err)
			}
			var batch []item
			for rows.Next() {
				var it item
				if err := rows.Scan(&it.rid, &it.typ, &it.id, &it.body); err != nil {
					rows.Close()
					return fmt.Errorf("fhirstore: reindex: %w", err)
				}
				batch = append(batch, it)
			}
			rows.Close()
			if err := rows.Err(); err != nil {
				return fmt.Errorf("fhirstore: reindex: %w", err)
			}
			ridList := make([]int64, len(rids))
			for i, r := range rids {
				ridList[i] = r.(int64)
			}
			stale, err := tx.clearIndexRows(ctx, ridList...)
			if err != nil {
				return fmt.Errorf("fhirstore: reindex clear: %w", err)
			}
			for _, it := range batch {
				dec := json.NewDecoder(bytes.NewReader([]byte(it.body)))
				dec.UseNumber()
				var body map[string]any
				if err := dec.Decode(&body); err != nil {
					return fmt.Errorf("fhirstore: reindex %s/%s: %w", it.typ, it.id, err)
				}
				ir, err := s.indexer.Index(it.typ, body)
				if err != nil {
					return fmt.Errorf("fhirstore: reindex %s/%s: %w", it.typ, it.id, err)
				}
				if ir == nil || ir.empty() {
					continue
				}
				if err := tx.writeIndexRows(ctx, it.rid, it.typ, ir); err != nil {
					return fmt.Errorf("fhirstore: reindex %s/%s: %w", it.typ, it.id, err)
				}
			}
			return tx.recomputeLatest(ctx, stale)
		})
		if err != nil {
			return err
		}
		after = rids[len(rids)-1].(int64)
		done += len(rids)
		if progress != nil {
			progress(done, max(total, done))
		}
	}
}

// LastN returns, for each code, the newest max Observations of the patient (by
// effective date), for Observation/$lastn. codes are tokens as in a search
// ("http://loinc.org|8867-4" or "8867-4"); when empty, every code the patient has
// Observations for is used. Results are grouped by code in the order of codes (or of the
// codes' first appearance), newest first within a code.
func (s *Store) LastN(ctx context.Context, patient string, codes []string, max int) ([]*Resource, error) {
	if max <= 0 {
		max = 1
	}
	if max > MaxPageSize {
		max = MaxPageSize
	}
	if max == 1 {
		if out, ok, err := s.lastOne(ctx, patient, codes); ok || err != nil {
			return out, err
		}
	}
	if len(codes) == 0 {
		return s.lastNAllCodes(ctx, patient, max)
	}
	seen := map[string]bool{}
	var out []*Resource
	for _, c := range codes {
		res, err := s.Search(ctx, SearchRequest{Type: "Observation", Params: url.Values{
			"patient": {"Patient/" + patient}, "code": {c}, "_sort": {"-date"}, "_count": {strconv.Itoa(max)},
		}})
		if err != nil {
			return nil, err
		}
		for _, r := range res.Matches {
			// An Observation with several codings appears once, under its first code.
			if k := r.Type + "/" + r.ID; !seen[k] {
				seen[k] = true
				out = append(out, r)
			}
		}
	}
	return out, nil
}

// Everything returns one page of Patient/$everything: the patient and every live resource
// in its compartment (per the vendored Patient CompartmentDefinition) as Matches,
// optionally only those changed since since and of the given types, in storage order;
// the resources they reference (practitioners, organizations, devices ...) come in
// Included, per page, so a resource may be included on more than one page.
func (s *Store) Everything(ctx context.Context, patientID string, since time.Time, types []string, count int, cursor string) (*SearchResult, error) {
	if _, err := s.Read(ctx, "Patient", patientID); err != nil {
		return nil, err
	}
	if count <= 0 {
		count = DefaultPageSize
	}
	count = min(count, MaxPageSize)
	var after int64
	plan := &searchPlan{hash: everythingHash(patientID, since, types)}
	if cursor != "" {
		_, rid, err := decodeCursor(cursor, plan)
		if err != nil {
			return nil, err
		}
		after = rid
	}
	where := []frag{{"r.deleted = 0", nil}, patientCompartmentCond("r", patientID, types)}
	if !since.IsZero() {
		where = append(where, frag{"r.last_updated >= ?", []any{since.UnixMicro()}})
	}
	if len(types) > 0 {
		where = append(where, inList("r.type", types))
	}
	w := joinFrags(" AND ", where)
	q := "SELECT r.rid, r.type, r.id, r.version, r.last_updated, r.body FROM resource r WHERE " + w.sql + " AND r.rid > ? ORDER BY r.rid LIMIT ?"
	rows, err := s.fetch(ctx, s.db, q, append(w.args, after, count+1))
	if err != nil {
		return nil, err
	}
	res := &SearchResult{Count: count, SelfParams: url.Values{}}
	if len(rows) > count {
		rows = rows[:count]
		res.Next = encodeCursor(plan, nil, rows[len(rows)-1].rid)
	}
	for _, r := range rows {
		res.Matches = append(res.Matches, r.res)
	}
	// $everything also returns what the page's resources reference (practitioners,
	// organizations, devices, medications...), as included resources of the page.
	if len(rows) > 0 {
		inc, err := s.includes(ctx, s.db, []includeSpec{{srcType: "*", param: "*"}}, rows)
		if err != nil {
			return nil, err
		}
		for _, r := range inc {
			// _type narrows the whole answer, the referenced resources included.
			if len(types) > 0 && !contains(types, r.Type) {
				continue
			}
			if !(r.Type == "Patient" && r.ID == patientID) {
				res.Included = append(res.Included, r)
			}
		}
	}
	if !since.IsZero() {
		res.SelfParams.Set("_since", FormatInstant(since))
	}
	if len(types) > 0 {
		res.SelfParams.Set("_type", strings.Join(types, ","))
	}
	return res, nil
}

func everythingHash(patientID string, since time.Time, types []string) uint64 {
	var h uint64 = 14695981039346656037
	for _, s := range append([]string{"$everything", patientID, since.String()}, types...) {
		for i := 0; i < len(s); i++ {
			h ^= uint64(s[i])
			h *= 1099511628211
		}
		h ^= 0xff
		h *= 1099511628211
	}
	return h
}

// lastNAllCodes is LastN over every code of the patient's Observations. Instead of one
// search per code (each walking the patient's whole history), it reads the patient's
// code and date index rows once, picks the newest max per code in memory and reads only
// those resources. The answer is the one the per-code searches give: codes in order of
// first appearance, newest first (the latest end of the effective time; undated last;
// ties by storage order), an Observation listed once, under its first code.
func (s *Store) lastNAllCodes(ctx context.Context, patient string, max int) ([]*Resource, error) {
	const ofPatient = `SELECT p.rid FROM idx_reference p WHERE p.type = 'Observation' AND p.param = 'patient' AND p.target_type = 'Patient' AND p.target_id = ?`
	keys := map[int64]int64{}
	rows, err := s.db.QueryContext(ctx, s.d.rebind(`SELECT d.rid, MAX(d.high) FROM idx_date d WHERE d.param = 'date' AND d.rid IN (`+ofPatient+`) GROUP BY d.rid`), patient)
	if err != nil {
		return nil, fmt.Errorf("fhirstore: lastn dates: %w", err)
	}
	for rows.Next() {
		var rid, high int64
		if err := rows.Scan(&rid, &high); err != nil {
			rows.Close()
			return nil, fmt.Errorf("fhirstore: lastn dates: %w", err)
		}
		keys[rid] = high
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("fhirstore: lastn dates: %w", err)
	}
	type entry struct{ rid, key int64 }
	type group struct {
		first   int64
		entries []entry
	}
	groups := map[[2]string]*group{}
	rows, err = s.db.QueryContext(ctx, s.d.rebind(`SELECT t.system, t.code, t.rid FROM idx_token t
		WHERE t.type = 'Observation' AND t.param = 'code' AND t.code <> '' AND t.rid IN (`+ofPatient+`)`), patient)
	if err != nil {
		return nil, fmt.Errorf("fhirstore: lastn codes: %w", err)
	}
	for rows.Next() {
		var sys, code string
		var rid int64
		if err := rows.Scan(&sys, &code, &rid); err != nil {
			rows.Close()
			return nil, fmt.Errorf("fhirstore: lastn codes: %w", err)
		}
		k := [2]string{sys, code}
		g := groups[k]
		if g == nil {
			g = &group{first: rid}
			groups[k] = g
		}
		g.first = min(g.first, rid)
		key, ok := keys[rid]
		if !ok {
			key = DateMin
		}
		// A resource coded twice with the same coding counts once.
		if !slices.ContainsFunc(g.entries, func(e entry) bool { return e.rid == rid }) {
			g.entries = append(g.entries, entry{rid, key})
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("fhirstore: lastn codes: %w", err)
	}
	ordered := make([]*group, 0, len(groups))
	for _, g := range groups {
		ordered = append(ordered, g)
	}
	sort.Slice(ordered, func(i, j int) bool { return ordered[i].first < ordered[j].first })
	var pick []int64
	seen := map[int64]bool{}
	for _, g := range ordered {
		sort.Slice(g.entries, func(i, j int) bool {
			a, b := g.entries[i], g.entries[j]
			if a.key != b.key {
				return a.key > b.key
			}
			return a.rid < b.rid
		})
		for _, e := range g.entries[:min(max, len(g.entries))] {
			if !seen[e.rid] {
				seen[e.rid] = true
				pick = append(pick, e.rid)
			}
		}
	}
	return s.liveInOrder(ctx, pick)
}

// liveInOrder reads the live resources of rids, in the order of rids (missing or deleted
// ones left out).
func (s *Store) liveInOrder(ctx context.Context, rids []int64) ([]*Resource, error) {
	if len(rids) == 0 {
		return nil, nil
	}
	args := make([]any, len(rids))
	for i, rid := range rids {
		args[i] = rid
	}
	found, err := s.fetch(ctx, s.db, "SELECT r.rid, r.type, r.id, r.version, r.last_updated, r.body FROM resource r WHERE r.deleted = 0 AND r.rid IN ("+placeholders(len(args))+")", args)
	if err != nil {
		return nil, err
	}
	byRID := make(map[int64]*Resource, len(found))
	for _, f := range found {
		byRID[f.rid] = f.res
	}
	out := make([]*Resource, 0, len(rids))
	for _, rid := range rids {
		if r := byRID[rid]; r != nil {
			out = append(out, r)
		}
	}
	return out, nil
}
