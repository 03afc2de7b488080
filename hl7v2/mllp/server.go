package mllp

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vigil-health/vigil/hl7v2"
)

// Handler processes one message. It returns the acknowledgment to send back (built with
// hl7v2.NewACK, typically after the message is stored). If it returns an error and no
// acknowledgment, the server answers AE or AR itself when the message parses.
type Handler interface {
	HandleMessage(ctx context.Context, raw []byte) (ack []byte, err error)
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(ctx context.Context, raw []byte) ([]byte, error)

// HandleMessage calls f.
func (f HandlerFunc) HandleMessage(ctx context.Context, raw []byte) ([]byte, error) {
	return f(ctx, raw)
}

// ErrServerClosed is returned by Serve after Shutdown or Close.
var ErrServerClosed = errors.New("mllp: server closed")

// Server defaults.
const (
	DefaultIdleTimeout  = 5 * time.Minute
	DefaultReadTimeout  = 30 * time.Second
	DefaultWriteTimeout = 30 * time.Second
)

// Server receives MLLP connections and hands each message to Handler, one at a time per
// connection: frames sent back to back are answered in order. Set the fields before Serve.
type Server struct {
	Handler Handler
	// TLSConfig, when set, makes Serve speak TLS.
	TLSConfig *tls.Config
	// IdleTimeout bounds the wait for the next frame (default DefaultIdleTimeout; negative:
	// no limit).
	IdleTimeout time.Duration
	// ReadTimeout bounds the reading of one frame once its start byte is in (default
	// DefaultReadTimeout; negative: no limit).
	ReadTimeout time.Duration
	// WriteTimeout bounds the writing of one acknowledgment (default DefaultWriteTimeout;
	// negative: no limit).
	WriteTimeout time.Duration
	// HandlerTimeout, when positive, is the deadline of the context given to Handler.
	HandlerTimeout time.Duration
	// MaxConnections, when positive, caps open connections; more are closed on accept.
	MaxConnections int
	// MaxFrameSize caps one message (default DefaultMaxFrameSize).
	MaxFrameSize int
	// Acker builds the acknowledgment when Handler fails without one (zero value: defaults).
	Acker hl7v2.Acker
	// Logger receives connection and message events, never message content unless
	// LogMessageContentPHI is set (default slog.Default()).
	Logger *slog.Logger
	// LogMessageContentPHI logs every message and acknowledgment at debug level. Messages hold
	// protected health information: keep this off outside development.
	LogMessageContentPHI bool

	mu        sync.Mutex
	listeners map[net.Listener]struct{}
	conns     map[*serverConn]struct{}
	closing   atomic.Bool
	wg        sync.WaitGroup
	ctx       context.Context
	cancel    context.CancelFunc
}

func (s *Server) init() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ctx == nil {
		s.ctx, s.cancel = context.WithCancel(context.Background())
		s.listeners = map[net.Listener]struct{}{}
		s.conns = map[*serverConn]struct{}{}
	}
}

func (s *Server) logger() *slog.Logger {
	if s.Logger != nil {
		return s.Logger
	}
	return slog.Default()
}

func durationOr(d, def time.Duration) time.Duration {
	if d == 0 {
		return def
	}
	return d
}

// ListenAndServe listens on addr (TCP) and serves it.
func (s *Server) ListenAndServe(addr string) error {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("mllp: listen %s: %w", addr, err)
	}
	return s.Serve(l)
}

// Serve accepts connections on l until Shutdown or Close, and then returns ErrServerClosed.
func (s *Server) Serve(l net.Listener) error {
	if s.Handler == nil {
		return errors.New("mllp: server has no Handler")
	}
	s.init()
	if s.TLSConfig != nil {
		l = tls.NewListener(l, s.TLSConfig)
	}
	s.mu.Lock()
	if s.closing.Load() {
		s.mu.Unlock()
		l.Close()
		return ErrServerClosed
	}
	s.listeners[l] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, l)
		s.mu.Unlock()
		l.Close()
	}()
	log := s.logger()
	var backoff time.Duration
	for {
		nc, err := l.Accept()
		if err != nil {
			if s.closing.Load() {
				return ErrServerClosed
			}
			if te, ok := err.(interface{ Temporary() bool }); ok && te.Temporary() {
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				log.Warn("mllp accept failed; retrying", "err", err, "backoff", backoff)
				time.Sleep(backoff)
				continue
			}
			return fmt.Errorf("mllp: accept: %w", err)
		}
		backoff = 0
		c := &serverConn{s: s, nc: nc}
		s.mu.Lock()
		switch {
		case s.closing.Load():
			s.mu.Unlock()
			nc.Close()
			return ErrServerClosed
		case s.MaxConnections > 0 && len(s.conns) >= s.MaxConnections:
			s.mu.Unlock()
			log.Warn("mllp connection refused: too many connections", "remote_addr", nc.RemoteAddr().String(), "max_connections", s.MaxConnections)
			nc.Close()
			continue
		}
		s.conns[c] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go c.serve()
	}
}

// Shutdown stops accepting, closes idle connections, lets each connection finish the message
// in hand (its acknowledgment written), then closes it. If ctx ends first, the remaining
// connections are closed, handler contexts cancelled, and ctx's error returned.
func (s *Server) Shutdown(ctx context.Context) error {
	s.init()
	s.mu.Lock()
	s.closing.Store(true)
	for l := range s.listeners {
		l.Close()
	}
	for c := range s.conns {
		c.interruptIfIdle()
	}
	s.mu.Unlock()
	done := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		s.cancel()
		return nil
	case <-ctx.Done():
		s.Close()
		<-done
		return ctx.Err()
	}
}

// Close closes the listeners and every connection at once, cancelling handler contexts.
func (s *Server) Close() error {
	s.init()
	s.mu.Lock()
	s.closing.Store(true)
	for l := range s.listeners {
		l.Close()
	}
	for c := range s.conns {
		c.nc.Close()
	}
	s.mu.Unlock()
	s.cancel()
	return nil
}

const (
	stateIdle = iota
	stateReading
	stateBusy
)

type serverConn struct {
	s     *Server
	nc    net.Conn
	mu    sync.Mutex
	state int
}

// interruptIfIdle makes a connection waiting for a frame return at once. Called with s.mu held.
func (c *serverConn) interruptIfIdle() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.state == stateIdle {
		_ = c.nc.SetReadDeadline(time.Unix(1, 0))
	}
}

// waitForFrame arms the idle deadline, or reports false when the server is shutting down.
func (c *serverConn) waitForFrame() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.s.closing.Load() {
		return false
	}
	c.state = stateIdle
	if d := durationOr(c.s.IdleTimeout, DefaultIdleTimeout); d > 0 {
		_ = c.nc.SetReadDeadline(time.Now().Add(d))
	} else {
		_ = c.nc.SetReadDeadline(time.Time{})
	}
	return true
}

// frameStarted switches from the idle deadline to the read deadline.
func (c *serverConn) frameStarted() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.s.closing.Load() && c.state == stateIdle {
		return // keep the deadline Shutdown set
	}
	c.state = stateReading
	if d := durationOr(c.s.ReadTimeout, DefaultReadTimeout); d > 0 {
		_ = c.nc.SetReadDeadline(time.Now().Add(d))
	} else {
		_ = c.nc.SetReadDeadline(time.Time{})
	}
}

func (c *serverConn) setBusy() {
	c.mu.Lock()
	c.state = stateBusy
	c.mu.Unlock()
}

func (c *serverConn) serve() {
	s := c.s
	log := s.logger().With("remote_addr", c.nc.RemoteAddr().String())
	defer func() {
		c.nc.Close()
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
		s.wg.Done()
	}()
	log.Debug("mllp connection opened")
	r := NewReader(c.nc, s.MaxFrameSize)
	r.onStart = c.frameStarted
	for c.waitForFrame() {
		frame, err := r.ReadFrame()
		if err != nil {
			switch {
			case errors.Is(err, ErrFrameTooLarge):
				log.Warn("mllp frame too large; dropped", "max_bytes", r.max)
				var tl *FrameTooLargeError
				if errors.As(err, &tl) {
					if werr := c.rejectOversized(log, tl); werr != nil {
						log.Info("mllp acknowledgment not written", "err", werr)
						return
					}
				}
				continue
			case errors.Is(err, io.EOF):
				log.Debug("mllp connection closed by peer", "dropped_bytes", r.Dropped())
			case errors.Is(err, os.ErrDeadlineExceeded):
				if !s.closing.Load() {
					log.Info("mllp connection timed out", "dropped_bytes", r.Dropped())
				}
			default:
				log.Info("mllp connection read failed", "err", err, "dropped_bytes", r.Dropped())
			}
			return
		}
		c.setBusy()
		if err := c.handle(log, frame); err != nil {
			log.Info("mllp acknowledgment not written", "err", err)
			return
		}
	}
}

// handle runs the Handler on one frame and writes its acknowledgment.
func (c *serverConn) handle(log *slog.Logger, frame []byte) error {
	s := c.s
	start := time.Now()
	ctx := s.ctx
	if s.HandlerTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, s.HandlerTimeout)
		defer cancel()
	}
	if s.LogMessageContentPHI {
		log.Debug("mllp message received (PHI)", "message", string(frame))
	}
	ack, err := c.callHandler(ctx, frame)
	if err != nil {
		// The handler's error text is its own; it is logged as given.
		log.Warn("mllp handler failed", "err", err, "bytes", len(frame))
		if ack == nil {
			ack = c.errorACK(log, frame, err)
		}
	}
	if ack == nil {
		log.Debug("mllp message handled; no acknowledgment", "bytes", len(frame), "duration", time.Since(start))
		return nil
	}
	if err := c.writeACK(ack); err != nil {
		return err
	}
	if s.LogMessageContentPHI {
		log.Debug("mllp acknowledgment sent (PHI)", "ack", string(ack))
	}
	log.Debug("mllp message handled", "bytes", len(frame), "ack_bytes", len(ack), "duration", time.Since(start))
	return nil
}

// rejectOversized answers a frame too large to read with AR (CR in enhanced mode) when its
// head holds a whole MSH segment, so that the sender stops resending it.
func (c *serverConn) rejectOversized(log *slog.Logger, tl *FrameTooLargeError) error {
	i := bytes.IndexAny(tl.Head, "\r\n")
	if i < 0 {
		return nil // the MSH segment is cut: its control ID cannot be trusted
	}
	c.setBusy()
	herr := &hl7v2.Error{Code: hl7v2.CodeInternalError, Severity: hl7v2.SeverityError,
		Message: fmt.Sprintf("message is larger than the limit of %d bytes", tl.Max), Err: hl7v2.ErrLimit}
	ack := c.errorACK(log, tl.Head[:i+1], herr)
	if ack == nil {
		return nil
	}
	return c.writeACK(ack)
}

// writeACK writes one acknowledgment within the write timeout.
func (c *serverConn) writeACK(ack []byte) error {
	if d := durationOr(c.s.WriteTimeout, DefaultWriteTimeout); d > 0 {
		_ = c.nc.SetWriteDeadline(time.Now().Add(d))
	} else {
		_ = c.nc.SetWriteDeadline(time.Time{})
	}
	return WriteFrame(c.nc, ack)
}

// callHandler runs the Handler, turning a panic into an error.
func (c *serverConn) callHandler(ctx context.Context, frame []byte) (ack []byte, err error) {
	defer func() {
		if p := recover(); p != nil {
			ack, err = nil, fmt.Errorf("mllp: handler panicked: %v", p)
		}
	}()
	return c.s.Handler.HandleMessage(ctx, frame)
}

// errorACK builds an AE/AR (or CE/CR) for a failed message, or returns nil when the message
// does not parse, is an acknowledgment, or the sender asked for none.
func (c *serverConn) errorACK(log *slog.Logger, frame []byte, herr error) []byte {
	m, err := hl7v2.Parse(frame)
	if err != nil {
		log.Warn("mllp message does not parse; no acknowledgment possible", "err", err, "bytes", len(frame))
		return nil
	}
	if hl7v2.IsACK(m) {
		return nil
	}
	code, ok := hl7v2.ResponseCode(m, herr)
	if !ok {
		return nil
	}
	ackMsg, err := c.s.Acker.NewACK(m, code, hl7v2.AsError(herr))
	if err != nil {
		log.Warn("mllp cannot build acknowledgment", "err", err)
		return nil
	}
	b, err := ackMsg.Encode()
	if err != nil {
		log.Warn("mllp cannot encode acknowledgment", "err", err)
		return nil
	}
	return b
}
