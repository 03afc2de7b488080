package fhirstore

import (
	"context"
	"regexp"
	"strconv"
)

// orderedByDate reports whether the page of plan is read by pageByDate: on PostgreSQL, a
// search of one type sorted by one date parameter ("latest N":
// Observation?patient=X&code=C&_sort=-date&_count=1).
func (s *Store) orderedByDate(plan *searchPlan) bool {
	return s.d.name() == "postgres" && len(plan.sorts) == 1 && plan.sorts[0].dateParam != "" &&
		len(plan.types) == 1 && plan.types[0] != ""
}

// pageByDate reads a page sorted by one date parameter without reading every match. The
// generic shape (pageSQL) reads each matching resource row and evaluates its sort key
// with a subquery, so "the newest heart rate" costs a heap page per reading the patient
// has. Here, when every condition is on the index tables, the candidates' keys come from
// the covering idx_date_rid and only the page's resources are read; otherwise the idx_date
// row is joined to the resource and stands for its key (the row holding the highest high,
// descending, or lowest low, ascending; ties broken by the other bound and the row's
// physical position), so a resource still appears once.
//
// Resources without a value of the parameter sort after all others in both directions
// (as in pageSQL), in storage order: they are read by a second query only when the dated
// ones do not fill the page.
func (s *Store) pageByDate(ctx context.Context, q queryer, where frag, plan *searchPlan, after []string, afterRID int64) ([]pageRow, [][]string, error) {
	sk := plan.sorts[0]
	limit := plan.count + 1
	sentinel := DateMin
	key, other, op, dir := "high", "low", ">", "DESC"
	keysetOp := " < ?"
	if !sk.desc {
		sentinel = DateMax
		key, other, op, dir = "low", "high", "<", "ASC"
		keysetOp = " > ?"
	}
	inUndated := false
	var afterKey int64
	if after != nil {
		v, err := keyArg('i', after[0])
		if err != nil {
			return nil, nil, badParam("", "invalid page cursor")
		}
		afterKey = v.(int64)
		inUndated = afterKey == sentinel
	}
	var rows []pageRow
	var keys [][]string
	if !inUndated {
		var sqlText string
		var args []any
		if rids, cond, ok := indexOnlyRIDs(plan); ok {
			// Every condition is on the index tables and the first one is of the
			// searched type: the sort key of each candidate comes from the covering
			// idx_date_rid, the page's rids are picked from the index alone and only
			// those resources are read (a deleted resource has no index rows).
			agg := "MAX"
			if !sk.desc {
				agg = "MIN"
			}
			sqlText = "SELECT r.rid, r.type, r.id, r.version, r.last_updated, r.body, k.k0 FROM (SELECT dd.rid, " + agg + "(dd." + key + ") AS k0 FROM " + rids.sql +
				" JOIN idx_date dd ON dd.rid = d.rid AND dd.param = ?"
			args = append(append([]any{}, rids.args...), sk.dateParam)
			if !cond.empty() {
				sqlText += " WHERE " + cond.sql
				args = append(args, cond.args...)
			}
			sqlText += " GROUP BY dd.rid"
			if after != nil {
				m := agg + "(dd." + key + ")"
				sqlText += " HAVING (" + m + keysetOp + " OR (" + m + " = ? AND dd.rid > ?))"
				args = append(args, afterKey, afterKey, afterRID)
			}
			sqlText += " ORDER BY k0 " + dir + ", dd.rid LIMIT ?) k JOIN resource r ON r.rid = k.rid ORDER BY k.k0 " + dir + ", r.rid"
		} else {
			// The row of d is the resource's key row when no other row of the same
			// resource and parameter comes before it in the sort order.
			sqlText = "SELECT r.rid, r.type, r.id, r.version, r.last_updated, r.body, d." + key + " AS k0" +
				" FROM idx_date d JOIN resource r ON r.rid = d.rid" +
				" WHERE d.type = ? AND d.param = ? AND " + where.sql +
				" AND " + firstRowCond(key, other, op)
			args = append([]any{plan.types[0], sk.dateParam}, where.args...)
			if after != nil {
				sqlText += " AND (d." + key + keysetOp + " OR (d." + key + " = ? AND r.rid > ?))"
				args = append(args, afterKey, afterKey, afterRID)
			}
			sqlText += " ORDER BY d." + key + " " + dir + ", r.rid LIMIT ?"
		}
		var err error
		if rows, keys, err = s.pageRows(ctx, q, plan, sqlText, append(args, limit)); err != nil {
			return nil, nil, err
		}
		if len(rows) >= limit {
			return rows, keys, nil
		}
	}
	return s.pageUndated(ctx, q, where, plan, sentinel, inUndated, afterRID, limit, rows, keys)
}

// pageUndated appends to rows (the dated matches of a page) the matches without a value
// of the sort parameter, in storage order, up to limit rows in all.
func (s *Store) pageUndated(ctx context.Context, q queryer, where frag, plan *searchPlan, sentinel int64, inUndated bool, afterRID int64, limit int, rows []pageRow, keys [][]string) ([]pageRow, [][]string, error) {
	sk := plan.sorts[0]
	sqlText := "SELECT r.rid, r.type, r.id, r.version, r.last_updated, r.body, CAST(? AS BIGINT) AS k0 FROM resource r WHERE " + where.sql +
		" AND NOT EXISTS (SELECT 1 FROM idx_date d3 WHERE d3.rid = r.rid AND d3.param = ?)"
	args := append(append([]any{sentinel}, where.args...), sk.dateParam)
	if inUndated {
		sqlText += " AND r.rid > ?"
		args = append(args, afterRID)
	}
	sqlText += " ORDER BY r.rid LIMIT " + strconv.Itoa(limit-len(rows))
	more, moreKeys, err := s.pageRows(ctx, q, plan, sqlText, args)
	if err != nil {
		return nil, nil, err
	}
	return append(rows, more...), append(keys, moreKeys...), nil
}

// firstRowCond holds for the idx_date row d that gives its resource's sort key: no other
// row of the same resource and parameter comes before it (op is ">" for the highest high,
// "<" for the lowest low; ties go to the other bound, then to the physical position).
func firstRowCond(key, other, op string) string {
	return "NOT EXISTS (SELECT 1 FROM idx_date d2 WHERE d2.rid = d.rid AND d2.param = d.param AND (d2." + key + " " + op + " d." + key +
		" OR (d2." + key + " = d." + key + " AND (d2." + other + " " + op + " d." + other +
		" OR (d2." + other + " = d." + other + " AND d2.ctid < d.ctid)))))"
}

var (
	outerRID = regexp.MustCompile(`\br\.rid\b`)
	outerCol = regexp.MustCompile(`\br\.`)
)

// indexOnlyWhere rewrites the conditions of a one-type search onto the idx_date row d when
// they only test r.rid against the index tables: the live and type conditions are implied
// by d (index rows exist only for live resources, and d.type is the searched type).
// ok is false when a condition reads another column of the resource (_id,
// _lastUpdated, a compartment).
func indexOnlyWhere(where []frag) (frag, bool) {
	var out []frag
	for _, w := range where {
		if w.sql == "r.deleted = 0" || w.sql == "r.type = ?" {
			continue
		}
		sql := outerRID.ReplaceAllString(w.sql, "d.rid")
		if outerCol.MatchString(sql) {
			return frag{}, false
		}
		out = append(out, frag{sql, w.args})
	}
	return joinFrags(" AND ", out), true
}

// indexOnlyCount counts the matches of a one-type search without reading resource rows
// (see indexOnlyRIDs). Observation?code=8867-4&_summary=count over a million readings is
// then an index-only scan instead of a probe of every matching resource.
func indexOnlyCount(plan *searchPlan) (frag, bool) {
	rids, cond, ok := indexOnlyRIDs(plan)
	if !ok {
		return frag{}, false
	}
	f := frag{"SELECT COUNT(*) FROM " + rids.sql, rids.args}
	if !cond.empty() {
		f.sql += " WHERE " + cond.sql
		f.args = append(append([]any{}, f.args...), cond.args...)
	}
	return f, true
}

// pageIndexOnly is the page query of an unsorted one-type search whose conditions are
// all on the index tables (PostgreSQL): the page's rids are picked from the index rows and
// only those resources are read, instead of reading every candidate resource (a
// patient's whole history) to test the other conditions.
func pageIndexOnly(plan *searchPlan, afterRID int64) (string, []any, bool) {
	rids, cond, ok := indexOnlyRIDs(plan)
	if !ok {
		return "", nil, false
	}
	args := append([]any{}, rids.args...)
	sqlText := "SELECT r.rid, r.type, r.id, r.version, r.last_updated, r.body FROM (SELECT d.rid FROM " + rids.sql + " WHERE d.rid > ?"
	args = append(args, afterRID)
	if !cond.empty() {
		sqlText += " AND " + cond.sql
		args = append(args, cond.args...)
	}
	sqlText += " ORDER BY d.rid LIMIT ?) k JOIN resource r ON r.rid = k.rid ORDER BY r.rid"
	args = append(args, plan.count+1)
	return sqlText, args, true
}

// indexOnlyRIDs applies when every condition of a one-type search is on the index tables
// (see indexOnlyWhere) and the first one selects index rows of the searched type. rids
// is "(SELECT DISTINCT <rid> AS rid FROM <first condition's rows>) d" and cond the other
// conditions on d.rid.
func indexOnlyRIDs(plan *searchPlan) (rids, cond frag, ok bool) {
	if len(plan.types) != 1 || plan.types[0] == "" {
		return frag{}, frag{}, false
	}
	var rest []frag
	for _, w := range plan.where {
		if w.sql == "r.deleted = 0" || w.sql == "r.type = ?" || w.sql == "r.type || '' = ?" {
			continue
		}
		rest = append(rest, w)
	}
	if len(rest) == 0 {
		return frag{}, frag{}, false
	}
	first := rest[0]
	// The first condition's rows must be of the searched type (indexFrom's shape).
	alias, from, found := ridInIndex(first.sql)
	if !found {
		return frag{}, frag{}, false
	}
	others, found := indexOnlyWhere(rest[1:])
	if !found {
		return frag{}, frag{}, false
	}
	return frag{"(SELECT DISTINCT " + alias + ".rid AS rid FROM " + from + ") d", first.args}, others, true
}
