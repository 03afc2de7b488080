package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/vigil-health/vigil/fhirstore"
)

// request is one FHIR interaction, independent of its transport: an HTTP request or an
// entry of a transaction/batch Bundle.
type request struct {
	method string
	// path segments after the FHIR base
	segs   []string
	query  url.Values
	header http.Header
	body   []byte
	// inBundle is set for Bundle entries (no nested transactions; no Prefer of its own).
	inBundle bool
}

// response is the result of one interaction.
type response struct {
	status int
	// res, when set, supplies ETag, Last-Modified and (with location) the Location header.
	res      *fhirstore.Resource
	location bool
	// body is the JSON payload (a resource, a Bundle or an OperationOutcome); nil for none.
	body []byte
	// outcome is an OperationOutcome for Prefer: return=OperationOutcome.
	outcome []byte
	header  http.Header
}

func (r *request) get(name string) string { return r.header.Get(name) }

// handleFHIR is the one echo handler of the FHIR API.
func (s *Server) handleFHIR(c echo.Context) error {
	hr := c.Request()
	if fe := checkAccept(hr); fe != nil {
		return fe
	}
	rest := strings.TrimPrefix(hr.URL.Path, "/fhir")
	rest = strings.Trim(rest, "/")
	var segs []string
	if rest != "" {
		segs = strings.Split(rest, "/")
	}
	req := &request{method: hr.Method, segs: segs, header: hr.Header}
	q, err := url.ParseQuery(hr.URL.RawQuery)
	if err != nil {
		return errorf(http.StatusBadRequest, "invalid", "malformed query string: %v", err)
	}
	req.query = q
	if hr.Method == http.MethodPost || hr.Method == http.MethodPut || hr.Method == http.MethodPatch {
		body, fe := s.readBody(hr)
		if fe != nil {
			return fe
		}
		req.body = body
		ct, _, _ := mime.ParseMediaType(hr.Header.Get("Content-Type"))
		isSearch := len(segs) > 0 && segs[len(segs)-1] == "_search"
		if ct == "application/x-www-form-urlencoded" && !isSearch {
			// Only _search takes a form; a resource sent as one is not a format we read.
			return errorf(http.StatusUnsupportedMediaType, "not-supported", "Content-Type %q is only accepted by _search: send resources as application/fhir+json", ct)
		}
		// POST Type/_search carries its parameters as a form body.
		if hr.Method == http.MethodPost && len(segs) == 2 && segs[1] == "_search" {
			if ct == "application/x-www-form-urlencoded" {
				form, err := url.ParseQuery(string(body))
				if err != nil {
					return errorf(http.StatusBadRequest, "invalid", "malformed form body: %v", err)
				}
				for k, vs := range form {
					req.query[k] = append(req.query[k], vs...)
				}
				req.body = nil
			}
		}
	}
	if len(segs) > 0 && s.types[segs[0]] {
		c.Set(ctxType, segs[0])
	}
	resp, interaction, err := s.dispatch(hr.Context(), req)
	c.Set(ctxInteraction, interaction)
	if err != nil {
		return err
	}
	s.write(c, req, resp)
	return nil
}

// readBody reads a request body within the size limit and checks its media type.
func (s *Server) readBody(hr *http.Request) ([]byte, *Error) {
	if hr.ContentLength > s.cfg.MaxBodyBytes {
		return nil, errorf(http.StatusRequestEntityTooLarge, "too-costly", "request body of %d bytes exceeds the limit of %d bytes", hr.ContentLength, s.cfg.MaxBodyBytes)
	}
	ct := hr.Header.Get("Content-Type")
	if ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil {
			return nil, errorf(http.StatusUnsupportedMediaType, "not-supported", "malformed Content-Type %q", ct)
		}
		switch mt {
		case "application/fhir+json", "application/json", "application/json+fhir", "application/json-patch+json",
			"application/x-www-form-urlencoded", "text/json":
		default:
			return nil, errorf(http.StatusUnsupportedMediaType, "not-supported", "Content-Type %q is not supported: use application/fhir+json", mt)
		}
	}
	b, err := io.ReadAll(http.MaxBytesReader(nil, hr.Body, s.cfg.MaxBodyBytes))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, errorf(http.StatusRequestEntityTooLarge, "too-costly", "request body exceeds the limit of %d bytes", s.cfg.MaxBodyBytes)
		}
		return nil, errorf(http.StatusBadRequest, "invalid", "reading request body: %v", err)
	}
	return b, nil
}

// checkAccept enforces content negotiation: JSON only. _format overrides Accept.
func checkAccept(hr *http.Request) *Error {
	if f := hr.URL.Query().Get("_format"); f != "" {
		switch f {
		case "json", "application/json", "application/fhir+json", "application/json+fhir", "text/json":
			return nil
		}
		return errorf(http.StatusNotAcceptable, "not-supported", "_format %q is not supported: this server speaks JSON (application/fhir+json)", f)
	}
	accept := hr.Header.Get("Accept")
	if accept == "" {
		return nil
	}
	for _, part := range strings.Split(accept, ",") {
		mt, params, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err != nil {
			continue
		}
		if q, ok := params["q"]; ok && q == "0" {
			continue
		}
		switch mt {
		case "*/*", "application/*", "application/fhir+json", "application/json", "application/json+fhir", "text/json", "text/*":
			return nil
		}
	}
	return errorf(http.StatusNotAcceptable, "not-supported", "none of the accepted media types (%s) can be produced: this server speaks application/fhir+json", accept)
}

// write sends resp, applying Prefer and _pretty.
func (s *Server) write(c echo.Context, req *request, resp *response) {
	w := c.Response()
	h := w.Header()
	for k, vs := range resp.header {
		h[k] = vs
	}
	if resp.res != nil {
		h.Set("ETag", resp.res.ETag())
		h.Set("Last-Modified", resp.res.LastUpdated.UTC().Format(http.TimeFormat))
		if resp.location {
			h.Set("Location", s.versionURL(resp.res))
		}
	}
	body := resp.body
	if resp.res != nil && (req.method == http.MethodPost || req.method == http.MethodPut || req.method == http.MethodPatch) {
		switch preferReturn(req.header) {
		case "minimal":
			body = nil
		case "OperationOutcome":
			body = resp.outcome
			if body == nil {
				body = info(fmtStatus(resp.status))
			}
		}
	}
	if body == nil {
		w.WriteHeader(resp.status)
		return
	}
	if pretty(c.Request()) {
		var buf bytes.Buffer
		if json.Indent(&buf, body, "", "  ") == nil {
			body = buf.Bytes()
		}
	}
	if h.Get("Content-Type") == "" {
		h.Set("Content-Type", contentType(c.Request()))
	}
	w.WriteHeader(resp.status)
	w.Write(body)
}

func pretty(hr *http.Request) bool { return hr.URL.Query().Get("_pretty") == "true" }

// contentType answers in the media type the client asked for: application/json when it
// asked for exactly that, application/fhir+json otherwise.
func contentType(hr *http.Request) string {
	f := hr.URL.Query().Get("_format")
	accept := hr.Header.Get("Accept")
	if f == "application/json" || f == "json" && strings.HasPrefix(accept, "application/json") || f == "" && strings.HasPrefix(accept, "application/json") {
		return "application/json; charset=utf-8"
	}
	return "application/fhir+json; charset=utf-8"
}

// preferReturn reads the return preference of the Prefer header.
func preferReturn(h http.Header) string {
	for _, v := range h.Values("Prefer") {
		for _, part := range strings.Split(v, ";") {
			for _, p := range strings.Split(part, ",") {
				k, val, ok := strings.Cut(strings.TrimSpace(p), "=")
				if ok && strings.TrimSpace(k) == "return" {
					return strings.Trim(strings.TrimSpace(val), `"`)
				}
			}
		}
	}
	return "representation"
}

// writeError sends an Error as an OperationOutcome.
func writeError(w *echo.Response, hr *http.Request, fe *Error, log *slog.Logger) {
	if fe.Status >= 500 && fe.cause != nil {
		log.Error("request failed", "err", redactIDs(fe.cause.Error()), "method", hr.Method)
	}
	body := outcomeJSON(fe.Issues)
	if pretty(hr) {
		var buf bytes.Buffer
		if json.Indent(&buf, body, "", "  ") == nil {
			body = buf.Bytes()
		}
	}
	w.Header().Set("Content-Type", "application/fhir+json; charset=utf-8")
	w.WriteHeader(fe.Status)
	w.Write(body)
}

// refInText matches Type/id in error text (store errors name the resource they failed on).
var refInText = regexp.MustCompile(`\b([A-Z][A-Za-z]{1,63})/[A-Za-z0-9\-.]{1,64}`)

// redactIDs hides resource ids in a message for the logs: ids can be client-assigned
// (an MRN, say), and logs hold no PHI.
func redactIDs(msg string) string { return refInText.ReplaceAllString(msg, "$1/[id]") }

// versionURL is the absolute URL of one version of a resource.
func (s *Server) versionURL(r *fhirstore.Resource) string {
	return s.FHIRBase() + "/" + r.Type + "/" + r.ID + "/_history/" + strconv.FormatInt(r.Version, 10)
}

// parseETag reads a version from an ETag value: W/"3", "3" or 3.
func parseETag(v string) (int64, *Error) {
	t := strings.TrimSpace(v)
	t = strings.TrimPrefix(t, "W/")
	t = strings.Trim(t, `"`)
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil || n < 1 {
		return 0, errorf(http.StatusBadRequest, "invalid", "malformed ETag %q: want W/\"<version>\"", v)
	}
	return n, nil
}

// decodeJSON parses a JSON object keeping numbers exact (FHIR decimals keep their digits).
func decodeJSON(b []byte) (map[string]any, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		return nil, err
	}
	if dec.More() {
		return nil, errors.New("trailing data after the JSON object")
	}
	return m, nil
}

// inTx runs fn in a store transaction and maps its error.
func (s *Server) inTx(ctx context.Context, fn func(tx *fhirstore.Tx) (*response, error)) (*response, error) {
	var resp *response
	err := s.store.InTx(ctx, func(tx *fhirstore.Tx) error {
		var err error
		resp, err = fn(tx)
		return err
	})
	if err != nil {
		return nil, asError(err)
	}
	return resp, nil
}

func parseHTTPDate(v string) (time.Time, bool) {
	t, err := http.ParseTime(v)
	return t, err == nil
}
