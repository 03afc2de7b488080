package fhirvalidate

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
)

// checkBundle applies the Bundle invariants of FHIR R4 (bdl-1 .. bdl-12) and the
// transaction/batch rules of the RESTful API (http.html#transaction) to one Bundle. path
// is the Bundle's own path relative to the root ("" for the root).
func (w *walker) checkBundle(path string, b frame, entries []entryFacts) {
	typ := string(b.typ)
	entryPath := func(e entryFacts, elem string) string {
		p := path + ".entry[" + strconv.Itoa(e.index) + "]"
		if elem != "" {
			p += "." + elem
		}
		return p
	}
	history := typ == "history"
	requestAllowed := typ == "batch" || typ == "transaction" || history
	responseAllowed := typ == "batch-response" || typ == "transaction-response" || history

	if b.hasTotal && typ != "searchset" && !history {
		w.issueAt(SeverityError, CodeInvariant, "bdl-1: total only when a search or history", path+".total")
	}
	switch typ {
	case "document":
		if !b.identSys || !b.identValue {
			w.issueAt(SeverityError, CodeInvariant, "bdl-9: a document must have an identifier with a system and a value", path+".identifier")
		}
		if !b.hasStamp {
			w.issueAt(SeverityError, CodeRequired, "bdl-10: a document must have a date (timestamp)", path+".timestamp")
		}
		if len(entries) == 0 || string(entries[0].resourceType) != "Composition" {
			w.issueAt(SeverityError, CodeInvariant, "bdl-11: a document must have a Composition as the first resource", path+".entry[0].resource")
		}
	case "message":
		if len(entries) == 0 || string(entries[0].resourceType) != "MessageHeader" {
			w.issueAt(SeverityError, CodeInvariant, "bdl-12: a message must have a MessageHeader as the first resource", path+".entry[0].resource")
		}
	}

	for _, e := range entries {
		if e.hasSearch && typ != "searchset" {
			w.issueAt(SeverityError, CodeInvariant, "bdl-2: entry.search only when a search", entryPath(e, "search"))
		}
		switch {
		case requestAllowed && !e.hasRequest:
			w.issueAt(SeverityError, CodeRequired, fmt.Sprintf("bdl-3: entry.request is mandatory in a %s Bundle", typ), entryPath(e, "request"))
		case !requestAllowed && e.hasRequest && typ != "":
			w.issueAt(SeverityError, CodeInvariant, fmt.Sprintf("bdl-3: entry.request is only allowed in batch, transaction and history Bundles, not in a %s Bundle", typ), entryPath(e, "request"))
		}
		switch {
		case responseAllowed && !e.hasResponse:
			w.issueAt(SeverityError, CodeRequired, fmt.Sprintf("bdl-4: entry.response is mandatory in a %s Bundle", typ), entryPath(e, "response"))
		case !responseAllowed && e.hasResponse && typ != "":
			w.issueAt(SeverityError, CodeInvariant, fmt.Sprintf("bdl-4: entry.response is only allowed in batch-response, transaction-response and history Bundles, not in a %s Bundle", typ), entryPath(e, "response"))
		}
		if !e.hasResource && !e.hasRequest && !e.hasResponse {
			w.issueAt(SeverityError, CodeInvariant, "bdl-5: an entry must have a resource or information (request or response)", entryPath(e, ""))
		}
		if bytes.Contains(e.fullURL, []byte("/_history/")) {
			w.issueAt(SeverityError, CodeInvariant, "bdl-8: fullUrl cannot be a version specific reference", entryPath(e, "fullUrl"))
		}
		if (typ == "transaction" || typ == "batch") && e.hasRequest {
			w.checkRequest(e, typ, entryPath)
		}
	}

	// bdl-7: fullUrl must be unique in a bundle, or else entries with the same fullUrl
	// must have different meta.versionId (except in history bundles). Only entries that
	// carry a resource are identified by their fullUrl.
	if !history && len(entries) > 1 {
		seen := make(map[string]int, len(entries))
		for _, e := range entries {
			if len(e.fullURL) == 0 || !e.hasResource {
				continue
			}
			k := string(e.fullURL) + "\x00" + string(e.versionID)
			if first, dup := seen[k]; dup {
				w.issueAt(SeverityError, CodeInvariant,
					fmt.Sprintf("bdl-7: fullUrl must be unique in a bundle, or else entries with the same fullUrl must have different meta.versionId; it repeats entry[%d]", first),
					entryPath(e, "fullUrl"))
				continue
			}
			seen[k] = e.index
		}
	}
}

// checkRequest applies the transaction/batch processing rules to an entry's request:
// POST and PUT carry a resource, PATCH a Binary or Parameters patch document, GET, HEAD and
// DELETE none. A missing method or url is reported by the structural validation.
func (w *walker) checkRequest(e entryFacts, typ string, entryPath func(entryFacts, string) string) {
	switch string(e.method) {
	case "POST", "PUT":
		if !e.hasResource {
			w.issueAt(SeverityError, CodeRequired,
				fmt.Sprintf("a %s entry with request.method %s must carry a resource", typ, e.method), entryPath(e, "resource"))
			return
		}
		if t, ok := urlType(e.url); ok && len(e.resourceType) > 0 && t != string(e.resourceType) && isResourceType(string(e.resourceType)) {
			w.issueAt(SeverityError, CodeInvalid,
				fmt.Sprintf("request.url addresses the type %.64s but the entry's resource is a %s", t, e.resourceType), entryPath(e, "request.url"))
		}
	case "PATCH":
		switch {
		case !e.hasResource:
			w.issueAt(SeverityError, CodeRequired,
				fmt.Sprintf("a %s entry with request.method PATCH must carry the patch as a Binary or Parameters resource", typ), entryPath(e, "resource"))
		case string(e.resourceType) != "Binary" && string(e.resourceType) != "Parameters":
			w.issueAt(SeverityError, CodeInvalid,
				"a PATCH entry must carry the patch as a Binary or Parameters resource", entryPath(e, "resource"))
		}
	case "GET", "HEAD", "DELETE":
		if e.hasResource {
			w.issueAt(SeverityError, CodeInvalid,
				fmt.Sprintf("a %s entry with request.method %s must not carry a resource", typ, e.method), entryPath(e, "resource"))
		}
	}
}

// urlType returns the resource type a relative request url addresses ("Patient" for
// "Patient", "/Patient/1" or "Patient?identifier=x"). ok is false for absolute urls and
// operations ("ValueSet/$lookup"), whose resource need not be of that type.
func urlType(url []byte) (string, bool) {
	u := string(url)
	if u == "" || strings.Contains(u, "://") || strings.HasPrefix(u, "urn:") || strings.Contains(u, "$") {
		return "", false
	}
	u = strings.TrimPrefix(u, "/")
	if i := strings.IndexAny(u, "/?"); i >= 0 {
		u = u[:i]
	}
	return u, u != ""
}
