package mllp

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vigil-health/vigil/hl7v2"
)

// Client defaults.
const (
	DefaultDialTimeout = 10 * time.Second
	DefaultSendTimeout = 30 * time.Second
)

// ErrClientClosed is returned by Send after Close.
var ErrClientClosed = errors.New("mllp: client closed")

// ClientOptions configure a Client.
type ClientOptions struct {
	// TLSConfig, when set, makes the client speak TLS.
	TLSConfig *tls.Config
	// DialTimeout bounds a connection attempt (default DefaultDialTimeout).
	DialTimeout time.Duration
	// Timeout bounds a Send whose context has no deadline (default DefaultSendTimeout).
	Timeout time.Duration
	// MaxFrameSize caps an acknowledgment (default DefaultMaxFrameSize).
	MaxFrameSize int
	// Logger receives connection events, never message content (default slog.Default()).
	Logger *slog.Logger
}

// Client sends messages to one MLLP server over one connection, one message at a time. It
// connects on first use and again after the connection breaks. It is safe for concurrent use;
// Sends are serialised.
type Client struct {
	addr   string
	opts   ClientOptions
	mu     sync.Mutex
	conn   net.Conn
	r      *Reader
	closed bool
	stale  atomic.Int64
	dials  atomic.Int64
}

// NewClient returns a client of the server at addr (host:port). It does not connect yet.
func NewClient(addr string, opts ClientOptions) *Client {
	return &Client{addr: addr, opts: opts}
}

// Dial returns a client connected to addr.
func Dial(ctx context.Context, addr string, opts ClientOptions) (*Client, error) {
	c := NewClient(addr, opts)
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.connect(ctx); err != nil {
		return nil, err
	}
	return c, nil
}

func (c *Client) logger() *slog.Logger {
	if c.opts.Logger != nil {
		return c.opts.Logger
	}
	return slog.Default()
}

// connect dials. Called with c.mu held.
func (c *Client) connect(ctx context.Context) error {
	d := &net.Dialer{Timeout: durationOr(c.opts.DialTimeout, DefaultDialTimeout)}
	var nc net.Conn
	var err error
	if c.opts.TLSConfig != nil {
		td := &tls.Dialer{NetDialer: d, Config: c.opts.TLSConfig}
		nc, err = td.DialContext(ctx, "tcp", c.addr)
	} else {
		nc, err = d.DialContext(ctx, "tcp", c.addr)
	}
	if err != nil {
		return fmt.Errorf("mllp: dial %s: %w", c.addr, err)
	}
	c.conn = nc
	c.r = NewReader(nc, c.opts.MaxFrameSize)
	c.dials.Add(1)
	return nil
}

// drop closes the connection so that the next Send reconnects. Called with c.mu held.
func (c *Client) drop() {
	if c.conn != nil {
		c.conn.Close()
		c.conn, c.r = nil, nil
	}
}

// alive reports whether a kept connection still looks open: a peer that closed it (an idle
// timeout, a restart) shows as EOF at once. Called with c.mu held.
func (c *Client) alive() bool {
	if c.r.br.Buffered() > 0 {
		return true // a late acknowledgment waits: the connection was open when it came
	}
	_ = c.conn.SetDeadline(time.Time{}) // a past deadline would fail the look
	return !peerClosed(c.conn)
}

// StaleACKs returns how many acknowledgments were discarded because they did not answer the
// message being sent (late answers to an earlier Send that timed out, say).
func (c *Client) StaleACKs() int64 { return c.stale.Load() }

// Dials returns how many connections the client has opened.
func (c *Client) Dials() int64 { return c.dials.Load() }

// Send sends raw, one HL7 message, and returns the acknowledgment whose MSA-2 equals the
// message's MSH-10; other acknowledgments are discarded. It waits until ctx ends or, when ctx
// has no deadline, for the Timeout option. On a timeout the connection is kept (a late
// acknowledgment is discarded by the next Send); on any other failure it is closed and the
// next Send reconnects.
func (c *Client) Send(ctx context.Context, raw []byte) (*hl7v2.Message, error) {
	m, err := hl7v2.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("mllp: send: %w", err)
	}
	id := m.ControlID()
	if id == "" {
		return nil, errors.New("mllp: send: message has no control ID (MSH-10)")
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, durationOr(c.opts.Timeout, DefaultSendTimeout))
		defer cancel()
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, ErrClientClosed
	}
	if c.conn != nil && !c.alive() {
		c.logger().Debug("mllp connection found closed; reconnecting", "addr", c.addr)
		c.drop()
	}
	if c.conn == nil {
		if err := c.connect(ctx); err != nil {
			return nil, err
		}
	}
	conn := c.conn
	deadline, _ := ctx.Deadline()
	_ = conn.SetDeadline(deadline)
	interrupted := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		_ = conn.SetDeadline(time.Unix(1, 0))
		close(interrupted)
	})
	defer func() {
		if !stop() {
			<-interrupted // else it could cut the next Send's deadline
		}
	}()
	if err := WriteFrame(conn, raw); err != nil {
		c.drop()
		return nil, c.ctxErr(ctx, err)
	}
	for {
		frame, err := c.r.ReadFrame()
		if err != nil {
			if errors.Is(err, ErrFrameTooLarge) {
				c.stale.Add(1)
				continue
			}
			if !errors.Is(err, os.ErrDeadlineExceeded) {
				c.drop()
			}
			return nil, c.ctxErr(ctx, fmt.Errorf("mllp: waiting for the acknowledgment: %w", err))
		}
		ack, err := hl7v2.Parse(frame)
		if err != nil || ack.Get("MSA-2") != id {
			c.stale.Add(1)
			continue
		}
		return ack, nil
	}
}

// ctxErr prefers the context's error when the context ended.
func (c *Client) ctxErr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("mllp: send to %s: %w", c.addr, ctx.Err())
	}
	// The connection deadline is the context's, and may fire a moment before its timer.
	if dl, ok := ctx.Deadline(); ok && errors.Is(err, os.ErrDeadlineExceeded) && !time.Now().Before(dl) {
		return fmt.Errorf("mllp: send to %s: %w", c.addr, context.DeadlineExceeded)
	}
	return err
}

// Close closes the connection. Later Sends fail with ErrClientClosed.
func (c *Client) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	c.drop()
	return nil
}
