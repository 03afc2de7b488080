// Package server is Vigil's HTTP front: the FHIR R4 REST API on echo (read, vread, create,
// update, patch, delete, history, conditional interactions, transaction and batch,
// CapabilityStatement, $validate), content negotiation, OperationOutcome errors, request
// limits and logs, and the operational endpoints /healthz, /readyz and /metrics.
//
// All FHIR interactions go through one dispatcher working on a transport-independent
// request, so entries of a transaction or batch Bundle are processed by exactly the code
// that serves the same interaction over HTTP.
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/vigil-health/vigil/fhirstore"
	"github.com/vigil-health/vigil/fhirvalidate"
)

// Version is the software version reported in the CapabilityStatement; set by the linker.
var Version = "0.1.0-dev"

// Config configures a Server.
type Config struct {
	// BaseURL is the public URL of the server (scheme, host, optional path prefix) without
	// a trailing slash; the FHIR base is BaseURL + "/fhir".
	BaseURL string
	// MaxBodyBytes bounds request bodies; larger ones get 413. Default 16 MiB.
	MaxBodyBytes int64
	// Logger receives request logs (no PHI: no bodies, no query strings).
	Logger *slog.Logger
	// Validator checks every written resource. Default: fhirvalidate.New with defaults.
	Validator *fhirvalidate.Validator
	// Ingest configures the device ingest endpoint.
	Ingest IngestConfig
}

// Server serves the FHIR API over a Store.
type Server struct {
	store     *fhirstore.Store
	cfg       Config
	log       *slog.Logger
	validator *fhirvalidate.Validator
	types     map[string]bool
	metrics   *metrics
	echo      *echo.Echo
	http      *http.Server
}

// New builds a Server on st.
func New(st *fhirstore.Store, cfg Config) *Server {
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = 16 << 20
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	cfg.BaseURL = strings.TrimRight(cfg.BaseURL, "/")
	if cfg.Validator == nil {
		cfg.Validator = fhirvalidate.New(fhirvalidate.Options{})
	}
	s := &Server{
		store:     st,
		cfg:       cfg,
		log:       cfg.Logger,
		validator: cfg.Validator,
		types:     make(map[string]bool, len(resourceTypes)),
		metrics:   newMetrics(st),
	}
	for _, t := range resourceTypes {
		s.types[t] = true
	}
	s.echo = s.routes()
	// Built here, not in Serve: Shutdown may run concurrently with (or before) Serve.
	s.http = &http.Server{
		Handler:           s.echo,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       2 * time.Minute,
		WriteTimeout:      5 * time.Minute,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	return s
}

// FHIRBase returns the absolute FHIR base URL.
func (s *Server) FHIRBase() string { return s.cfg.BaseURL + "/fhir" }

// Handler returns the HTTP handler (for tests and embedding).
func (s *Server) Handler() http.Handler { return s.echo }

// Serve serves HTTP on l until Shutdown. After Shutdown it returns nil at once.
func (s *Server) Serve(l net.Listener) error {
	err := s.http.Serve(l)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// Shutdown stops accepting connections and waits for in-flight requests to finish (their
// transactions commit or roll back whole) until ctx ends.
func (s *Server) Shutdown(ctx context.Context) error {
	return s.http.Shutdown(ctx)
}

func (s *Server) routes() *echo.Echo {
	e := echo.New()
	e.HideBanner = true
	e.HidePort = true
	e.HTTPErrorHandler = s.echoError
	e.Use(s.logRequests)
	e.GET("/healthz", s.healthz)
	e.GET("/readyz", s.readyz)
	e.GET("/metrics", echo.WrapHandler(s.metrics.handler()))
	e.POST("/ingest/readings", s.ingest)
	fhir := s.handleFHIR
	e.Any("/fhir", fhir)
	e.Any("/fhir/", fhir)
	e.Any("/fhir/*", fhir)
	return e
}

// echoError turns errors echo raises itself (unknown route, 405) into OperationOutcomes.
func (s *Server) echoError(err error, c echo.Context) {
	if c.Response().Committed {
		return
	}
	var he *echo.HTTPError
	fe := asError(err)
	if errors.As(err, &he) {
		fe = errorf(he.Code, "not-supported", "%v", he.Message)
		if he.Code == http.StatusNotFound {
			fe = errorf(http.StatusNotFound, "not-found", "no such endpoint: %s", c.Request().URL.Path)
		}
	}
	writeError(c.Response(), c.Request(), fe, s.log)
}

func (s *Server) healthz(c echo.Context) error {
	return c.JSON(http.StatusOK, map[string]string{"status": "ok"})
}

func (s *Server) readyz(c echo.Context) error {
	ctx, cancel := context.WithTimeout(c.Request().Context(), 2*time.Second)
	defer cancel()
	if err := s.store.Ping(ctx); err != nil {
		s.log.Warn("readiness check failed", "err", err)
		return c.JSON(http.StatusServiceUnavailable, map[string]string{"status": "unavailable", "reason": "database unreachable"})
	}
	return c.JSON(http.StatusOK, map[string]string{"status": "ready", "backend": s.store.Backend()})
}

// logRequests logs one line per request: method, route kind, status, duration. The path is
// logged without its query string (search values can be identifiers or names).
func (s *Server) logRequests(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		start := time.Now()
		err := next(c)
		if err != nil {
			c.Error(err)
		}
		status := c.Response().Status
		interaction, _ := c.Get(ctxInteraction).(string)
		if interaction == "" {
			interaction = "other"
		}
		d := time.Since(start)
		s.metrics.observe(interaction, status, d)
		level := slog.LevelInfo
		if status >= 500 {
			level = slog.LevelError
		}
		// Resource ids can be client-assigned (an MRN, say), so FHIR paths are logged as
		// the resource type only.
		path := c.Request().URL.Path
		if strings.HasPrefix(path, "/fhir") {
			path = "/fhir"
			if t, _ := c.Get(ctxType).(string); t != "" {
				path += "/" + t
			}
		}
		s.log.Log(c.Request().Context(), level, "http request",
			"method", c.Request().Method,
			"path", path,
			"interaction", interaction,
			"status", status,
			"duration_ms", float64(d.Microseconds())/1000,
			"bytes_out", c.Response().Size,
		)
		return nil
	}
}

const (
	ctxInteraction = "vigil.interaction"
	ctxType        = "vigil.type"
)

func fmtStatus(code int) string { return fmt.Sprintf("%d %s", code, http.StatusText(code)) }
