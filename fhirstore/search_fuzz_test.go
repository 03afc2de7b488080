package fhirstore

import (
	"bufio"
	"errors"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"
)

// seedQueries reads testdata/search/queries.txt: one "Type query" per line ("" type for a
// system search).
func seedQueries(t testing.TB) [][2]string {
	f, err := os.Open("../testdata/search/queries.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out [][2]string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		typ, q, _ := strings.Cut(sc.Text(), " ")
		out = append(out, [2]string{typ, q})
	}
	return out
}

// countPlaceholders counts the ? outside quoted literals.
func countPlaceholders(q string) int {
	n, inQuote := 0, false
	for i := 0; i < len(q); i++ {
		switch {
		case q[i] == '\'':
			inQuote = !inQuote
		case q[i] == '?' && !inQuote:
			n++
		}
	}
	return n
}

// checkPlan builds the SQL of a search and checks that it is well formed: a typed error
// or SQL whose placeholders match its arguments.
func checkPlan(t *testing.T, reg *Registry, typ, query string) {
	params, err := url.ParseQuery(query)
	if err != nil {
		return
	}
	for _, lenient := range []bool{false, true} {
		b := &qb{snap: reg.snapshot(), now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
		plan, err := b.plan(SearchRequest{Type: typ, Params: params, Lenient: lenient})
		if err != nil {
			var se *SearchError
			if !errors.As(err, &se) {
				t.Fatalf("%s?%s: untyped error %v", typ, query, err)
			}
			if lenient && se.Param != "" {
				// Lenient handling ignores bad parameters; only the type itself can fail.
				t.Fatalf("%s?%s: lenient search failed on a parameter: %v", typ, query, err)
			}
			continue
		}
		q, args, err := pageSQL(joinFrags(" AND ", plan.where), plan, nil, 0)
		if err != nil {
			t.Fatalf("%s?%s: %v", typ, query, err)
		}
		if n := countPlaceholders(q); n != len(args) {
			t.Fatalf("%s?%s: %d placeholders, %d args in\n%s", typ, query, n, len(args), q)
		}
	}
}

func TestSeedQueriesPlan(t *testing.T) {
	reg, err := NewRegistry()
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range seedQueries(t) {
		checkPlan(t, reg, s[0], s[1])
	}
}

func FuzzSearchParams(f *testing.F) {
	for _, s := range seedQueries(f) {
		f.Add(s[0], s[1])
	}
	reg, err := NewRegistry()
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, typ, query string) {
		checkPlan(t, reg, typ, query)
	})
}

func FuzzParseDateRange(f *testing.F) {
	for _, s := range []string{"2020", "2020-02", "2020-02-29", "2020-03-04T05:06:07.123+02:00", "2020-03-04T05:06Z", "1-01-01"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		lo, hi, ok := ParseDateRange(s)
		if ok && lo > hi {
			t.Fatalf("%q: low %d > high %d", s, lo, hi)
		}
	})
}
