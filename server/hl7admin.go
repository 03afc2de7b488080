package server

import (
	"encoding/base64"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/labstack/echo/v4"

	"github.com/vigil-health/vigil/fhirstore"
)

// RegisterHL7Admin adds the operator endpoints of the HL7 v2 bridge b to the server:
//
//	GET  /admin/hl7/messages?status=processed|error&_count=n&before=id   the inbound log, newest first
//	GET  /admin/hl7/messages/{id}                                         one entry, raw text and ACK included
//	GET  /admin/hl7/outbox?status=pending|sent|parked|failed&destination=name&_count=n&before=id
//	POST /admin/hl7/outbox/{id}/retry                                     requeue a parked or failed message
//
// Answers are JSON; errors are OperationOutcomes. Entries hold patient data (raw
// messages): the endpoints must sit behind the same authorization as the FHIR API.
// Call it once, before Serve.
func (s *Server) RegisterHL7Admin(b *HL7Bridge) {
	a := &hl7Admin{s: s, b: b}
	g := s.echo.Group("/admin/hl7", func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			c.Set(ctxInteraction, "admin")
			return next(c)
		}
	})
	g.GET("/messages", a.messages)
	g.GET("/messages/:id", a.message)
	g.GET("/outbox", a.outbox)
	g.POST("/outbox/:id/retry", a.retry)
}

type hl7Admin struct {
	s *Server
	b *HL7Bridge
}

// adminMessage is the JSON of one inbound log entry.
type adminMessage struct {
	ID         int64    `json:"id"`
	Sender     string   `json:"sender,omitempty"`
	ControlID  string   `json:"control_id,omitempty"`
	Type       string   `json:"type,omitempty"`
	Status     string   `json:"status"`
	AckCode    string   `json:"ack_code,omitempty"`
	Error      string   `json:"error,omitempty"`
	Resources  []string `json:"resources,omitempty"`
	ReceivedAt string   `json:"received_at"`
	// Raw and Ack are the messages as text (segments separated by \r), or base64 with
	// RawEncoding "base64" when the bytes are not UTF-8. Only in the single-entry view.
	Raw         string `json:"raw,omitempty"`
	RawEncoding string `json:"raw_encoding,omitempty"`
	Ack         string `json:"ack,omitempty"`
}

type adminOutbox struct {
	ID          int64  `json:"id"`
	Destination string `json:"destination"`
	Ref         string `json:"ref,omitempty"`
	Status      string `json:"status"`
	Attempts    int    `json:"attempts"`
	NextAttempt string `json:"next_attempt,omitempty"`
	LastError   string `json:"last_error,omitempty"`
	CreatedAt   string `json:"created_at"`
	SentAt      string `json:"sent_at,omitempty"`
	Payload     string `json:"payload,omitempty"`
}

func toAdminMessage(m *fhirstore.InboundMessage, full bool) adminMessage {
	out := adminMessage{ID: m.ID, Sender: m.Sender, ControlID: m.ControlID, Type: m.Type, Status: m.Status,
		AckCode: m.AckCode, Error: m.Error, Resources: m.Resources, ReceivedAt: fhirstore.FormatInstant(m.ReceivedAt)}
	if full {
		if utf8.Valid(m.Raw) {
			out.Raw = string(m.Raw)
		} else {
			out.Raw, out.RawEncoding = base64.StdEncoding.EncodeToString(m.Raw), "base64"
		}
		out.Ack = string(m.Ack)
	}
	return out
}

func toAdminOutbox(m *fhirstore.OutboxMessage, full bool) adminOutbox {
	out := adminOutbox{ID: m.ID, Destination: m.Destination, Ref: m.Ref, Status: m.Status, Attempts: m.Attempts,
		LastError: m.LastError, CreatedAt: fhirstore.FormatInstant(m.CreatedAt)}
	if m.Status == fhirstore.OutboxPending {
		out.NextAttempt = fhirstore.FormatInstant(m.NextAttempt)
	}
	if !m.SentAt.IsZero() {
		out.SentAt = fhirstore.FormatInstant(m.SentAt)
	}
	if full {
		out.Payload = string(m.Payload)
	}
	return out
}

// page reads _count and before.
func page(c echo.Context) (count int, before int64, fe *Error) {
	if v := c.QueryParam("_count"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return 0, 0, errorf(http.StatusBadRequest, "invalid", "_count must be a positive integer")
		}
		count = n
	}
	if v := c.QueryParam("before"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 1 {
			return 0, 0, errorf(http.StatusBadRequest, "invalid", "before must be a positive integer (an id)")
		}
		before = n
	}
	return count, before, nil
}

func pathID(c echo.Context) (int64, *Error) {
	id, err := strconv.ParseInt(c.Param("id"), 10, 64)
	if err != nil || id < 1 {
		return 0, errorf(http.StatusNotFound, "not-found", "no such entry")
	}
	return id, nil
}

func (a *hl7Admin) messages(c echo.Context) error {
	status := c.QueryParam("status")
	if status != "" && status != fhirstore.MessageProcessed && status != fhirstore.MessageError {
		return errorf(http.StatusBadRequest, "invalid", "status must be processed or error")
	}
	count, before, fe := page(c)
	if fe != nil {
		return fe
	}
	ms, err := a.s.store.Messages(c.Request().Context(), fhirstore.MessageQuery{Status: status, Count: count, Before: before})
	if err != nil {
		return asError(err)
	}
	return adminPage(c, ms, count, func(m *fhirstore.InboundMessage) (adminMessage, int64) { return toAdminMessage(m, false), m.ID })
}

// adminPage answers one page of a log listing, newest first, with the link to the next
// page when this one is full. view gives an entry's summary and its id.
func adminPage[M, V any](c echo.Context, ms []M, count int, view func(M) (V, int64)) error {
	out := struct {
		Messages []V    `json:"messages"`
		Next     string `json:"next,omitempty"`
	}{Messages: make([]V, 0, len(ms))}
	var last int64
	for _, m := range ms {
		v, id := view(m)
		out.Messages = append(out.Messages, v)
		last = id
	}
	if len(ms) > 0 && len(ms) == pageOr(count) {
		out.Next = nextLink(c, last)
	}
	return c.JSON(http.StatusOK, out)
}

func (a *hl7Admin) message(c echo.Context) error {
	id, fe := pathID(c)
	if fe != nil {
		return fe
	}
	m, err := a.s.store.Message(c.Request().Context(), id)
	if errors.Is(err, fhirstore.ErrNotFound) {
		return errorf(http.StatusNotFound, "not-found", "no inbound message %d", id)
	}
	if err != nil {
		return asError(err)
	}
	return c.JSON(http.StatusOK, toAdminMessage(m, true))
}

func (a *hl7Admin) outbox(c echo.Context) error {
	status := c.QueryParam("status")
	switch status {
	case "", fhirstore.OutboxPending, fhirstore.OutboxSent, fhirstore.OutboxParked, fhirstore.OutboxFailed:
	default:
		return errorf(http.StatusBadRequest, "invalid", "status must be pending, sent, parked or failed")
	}
	count, before, fe := page(c)
	if fe != nil {
		return fe
	}
	ms, err := a.s.store.OutboxMessages(c.Request().Context(), fhirstore.OutboxQuery{
		Destination: c.QueryParam("destination"), Status: status, Count: count, Before: before})
	if err != nil {
		return asError(err)
	}
	return adminPage(c, ms, count, func(m *fhirstore.OutboxMessage) (adminOutbox, int64) { return toAdminOutbox(m, false), m.ID })
}

func (a *hl7Admin) retry(c echo.Context) error {
	id, fe := pathID(c)
	if fe != nil {
		return fe
	}
	m, err := a.s.store.RequeueOutbox(c.Request().Context(), id)
	switch {
	case errors.Is(err, fhirstore.ErrNotFound):
		return errorf(http.StatusNotFound, "not-found", "no outbox message %d", id)
	case errors.Is(err, fhirstore.ErrConflict):
		return errorf(http.StatusConflict, "conflict", "outbox message %d was delivered already", id)
	case err != nil:
		return asError(err)
	}
	a.b.wake(m.Destination)
	a.s.log.Info("hl7 outbox message requeued by an operator", "outbox_id", id, "destination", m.Destination)
	return c.JSON(http.StatusOK, toAdminOutbox(m, false))
}

func pageOr(count int) int {
	if count <= 0 {
		return fhirstore.DefaultPageSize
	}
	return min(count, fhirstore.MaxPageSize)
}

// nextLink is the URL of the next page: the same query with before set to the last id.
func nextLink(c echo.Context, last int64) string {
	q := c.QueryParams()
	q.Set("before", strconv.FormatInt(last, 10))
	return strings.TrimRight(c.Request().URL.Path, "/") + "?" + q.Encode()
}
