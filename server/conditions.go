package server

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"

	"github.com/vigil-health/vigil/fhirstore"
)

// resultParams are the parameters that shape a result rather than select resources; they
// are ignored when a query is used as a condition.
var resultParams = map[string]bool{
	"_format": true, "_pretty": true, "_count": true, "_sort": true, "_summary": true,
	"_elements": true, "_total": true, "_include": true, "_revinclude": true, "_page": true,
}

// conditionParams returns the selecting parameters of q.
func conditionParams(q url.Values) []string {
	var names []string
	for k := range q {
		if !resultParams[k] {
			names = append(names, k)
		}
	}
	sort.Strings(names)
	return names
}

// match finds the live resources of typ selected by the search q (at most limit ids; one
// more than the largest page means "more than that"). Any search the server answers can
// be a condition; result parameters (_count, _sort ...) are ignored.
func (s *Server) match(ctx context.Context, tx *fhirstore.Tx, typ string, q url.Values, limit int) ([]string, *Error) {
	names := conditionParams(q)
	if len(names) == 0 {
		return nil, errorf(http.StatusBadRequest, "invalid", "the condition selects nothing: give search parameters such as identifier=system|value")
	}
	params := url.Values{}
	for _, n := range names {
		params[n] = slices.Clone(q[n])
	}
	fixDateOffsets(params)
	// Serialise writers that test the same condition until their transactions end, so
	// that two identical conditional creates (a device retrying, two servers on one
	// database) cannot both find nothing and both create. A different spelling of the
	// same condition is a different lock.
	if err := tx.LockKey(ctx, conditionKey(typ, params)); err != nil {
		return nil, asError(err)
	}
	count := min(limit, fhirstore.MaxPageSize)
	params.Set("_count", strconv.Itoa(count))
	params.Set("_sort", "_id")
	res, err := tx.Search(ctx, fhirstore.SearchRequest{Type: typ, Params: params, BaseURL: s.FHIRBase()})
	if err != nil {
		var fe *Error
		if errors.As(searchError(err), &fe) {
			return nil, fe
		}
		return nil, asError(err)
	}
	ids := make([]string, 0, len(res.Matches)+1)
	for _, r := range res.Matches {
		ids = append(ids, r.ID)
	}
	if res.Next != "" && len(ids) == count {
		ids = append(ids, "") // more than one page: callers only compare the count
	}
	return ids, nil
}
