package server

import (
	"net/url"
	"slices"
)

// conditionKey names the condition q on typ: its selecting parameters in a canonical
// order. Conditional writes lock it in the database (Tx.LockKey) for the rest of their
// transaction.
func conditionKey(typ string, q url.Values) string {
	c := url.Values{}
	for _, name := range conditionParams(q) {
		vs := slices.Clone(q[name])
		slices.Sort(vs)
		c[name] = vs
	}
	return typ + "?" + c.Encode()
}
