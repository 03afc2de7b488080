package server

import (
	"net/url"
	"slices"
	"strings"
	"sync"
)

// condLocks serialises conditional writes (If-None-Exist creates, conditional updates)
// that carry the same condition, from the search that finds no match to the commit of
// the create. Without it two concurrent identical conditional creates both find nothing
// on PostgreSQL (READ COMMITTED, no row to lock) and both create: a device retrying a
// reading would store it twice, and every later condition on it would fail with 412.
// SQLite serialises all writes already.
//
// The lock is per process: several servers on one database still need a lock in the
// database (an advisory lock per condition in the store's transaction).
type condLocks struct {
	mu sync.Mutex
	m  map[string]*condLock
}

type condLock struct {
	mu   sync.Mutex
	refs int
}

// conditionKey names the condition q on typ: its selecting parameters in a canonical order.
func conditionKey(typ string, q url.Values) string {
	c := url.Values{}
	for _, name := range conditionParams(q) {
		vs := slices.Clone(q[name])
		slices.Sort(vs)
		c[name] = vs
	}
	return typ + "?" + c.Encode()
}

// ifNoneExistKey is conditionKey for an If-None-Exist header value; a malformed one is
// keyed by its text (the write fails on it anyway).
func ifNoneExistKey(typ, ifNoneExist string) string {
	q, err := url.ParseQuery(strings.TrimPrefix(ifNoneExist, "?"))
	if err != nil {
		return typ + "?" + ifNoneExist
	}
	return conditionKey(typ, q)
}

// lock takes the locks of keys (in sorted order, so that callers holding several never
// deadlock) and returns the function that releases them.
func (l *condLocks) lock(keys []string) (unlock func()) {
	keys = slices.Compact(slices.Sorted(slices.Values(keys)))
	held := make([]*condLock, 0, len(keys))
	for _, k := range keys {
		l.mu.Lock()
		if l.m == nil {
			l.m = map[string]*condLock{}
		}
		cl := l.m[k]
		if cl == nil {
			cl = &condLock{}
			l.m[k] = cl
		}
		cl.refs++
		l.mu.Unlock()
		cl.mu.Lock()
		held = append(held, cl)
	}
	return func() {
		for i := len(held) - 1; i >= 0; i-- {
			held[i].mu.Unlock()
			l.mu.Lock()
			held[i].refs--
			if held[i].refs == 0 {
				delete(l.m, keys[i])
			}
			l.mu.Unlock()
		}
	}
}
