package mllp

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigil-health/vigil/hl7v2"
)

func testMessage(id string) []byte {
	return []byte("MSH|^~\\&|MON|ICU|VIGIL|HOSP|20261125093000||ORU^R01^ORU_R01|" + id + "|P|2.6\rPID|||MRN1||Doe^Jane\rOBX|1|NM|147842^MDC_ECG_HEART_RATE^MDC|1.1.1.1|72\r")
}

// ackHandler acknowledges every message with AA.
func ackHandler() Handler {
	return HandlerFunc(func(ctx context.Context, raw []byte) ([]byte, error) {
		m, err := hl7v2.Parse(raw)
		if err != nil {
			return nil, err
		}
		ack, err := hl7v2.NewACK(m, hl7v2.AA)
		if err != nil {
			return nil, err
		}
		return ack.Encode()
	})
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

func newTestServer(t *testing.T, h Handler, opt func(*Server)) (*Server, string) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{Handler: h, Logger: discardLogger()}
	if opt != nil {
		opt(s)
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve(l) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		if err := <-served; !errors.Is(err, ErrServerClosed) {
			t.Errorf("Serve returned %v, want ErrServerClosed", err)
		}
	})
	return s, l.Addr().String()
}

// rawConn is a test connection that speaks raw MLLP.
type rawConn struct {
	net.Conn
	r *Reader
}

func dialRaw(t *testing.T, addr string) *rawConn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	return &rawConn{Conn: c, r: NewReader(c, 0)}
}

func (c *rawConn) readACK(t *testing.T) *hl7v2.Message {
	t.Helper()
	f, err := c.r.ReadFrame()
	if err != nil {
		t.Fatalf("reading the ACK: %v", err)
	}
	m, err := hl7v2.Parse(f)
	if err != nil {
		t.Fatalf("ACK does not parse: %v", err)
	}
	return m
}

func TestServerPipelinedFramesAnsweredInOrder(t *testing.T) {
	var mu sync.Mutex
	var order []string
	h := HandlerFunc(func(ctx context.Context, raw []byte) ([]byte, error) {
		m, _ := hl7v2.Parse(raw)
		mu.Lock()
		order = append(order, m.ControlID())
		mu.Unlock()
		return ackHandler().HandleMessage(ctx, raw)
	})
	_, addr := newTestServer(t, h, nil)
	c := dialRaw(t, addr)
	var all bytes.Buffer
	ids := []string{"M1", "M2", "M3", "M4", "M5", "M6", "M7", "M8"}
	all.WriteString("noise before the first frame")
	for _, id := range ids {
		all.WriteString(frame(string(testMessage(id))))
	}
	if _, err := c.Write(all.Bytes()); err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		ack := c.readACK(t)
		if got := ack.Get("MSA-2"); got != id {
			t.Fatalf("ACK for %s, want %s (answers out of order)", got, id)
		}
		if got := ack.Get("MSA-1"); got != "AA" {
			t.Errorf("MSA-1 = %s, want AA", got)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if strings.Join(order, ",") != strings.Join(ids, ",") {
		t.Errorf("handled in order %v", order)
	}
}

func TestServerBuildsErrorACK(t *testing.T) {
	for _, tc := range []struct {
		name    string
		err     error
		msh1516 string
		code    string
		errCode string
	}{
		{"plain error is AE 207", errors.New("database is down"), "", "AE", "207"},
		{"unsupported type is AR 200", &hl7v2.Error{Code: hl7v2.CodeUnsupportedMessageType, Location: hl7v2.Location{Segment: "MSH", Field: 9}, Message: "no"}, "", "AR", "200"},
		{"data type error is AE 102", &hl7v2.Error{Code: hl7v2.CodeDataType, Location: hl7v2.Location{Segment: "OBX", Field: 5}}, "", "AE", "102"},
		{"enhanced mode accept ack is CE", errors.New("boom"), "|||AL|NE", "CE", "207"},
		{"PCD-01 NE/AL gets AE", errors.New("boom"), "|||NE|AL", "AE", "207"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := HandlerFunc(func(ctx context.Context, raw []byte) ([]byte, error) { return nil, tc.err })
			_, addr := newTestServer(t, h, nil)
			c := dialRaw(t, addr)
			msg := strings.Replace(string(testMessage("E1")), "|P|2.6\r", "|P|2.6"+tc.msh1516+"\r", 1)
			if err := WriteFrame(c, []byte(msg)); err != nil {
				t.Fatal(err)
			}
			ack := c.readACK(t)
			if ack.Get("MSA-1") != tc.code || ack.Get("MSA-2") != "E1" || ack.Get("ERR-3") != tc.errCode {
				t.Errorf("ACK = %q, want MSA-1 %s and ERR-3 %s", ack.String(), tc.code, tc.errCode)
			}
			if strings.Contains(ack.String(), "database") {
				t.Error("the internal error text reached the sender")
			}
		})
	}
}

func TestServerKeepsConnectionAfterUnparseableMessage(t *testing.T) {
	h := HandlerFunc(func(ctx context.Context, raw []byte) ([]byte, error) {
		if _, err := hl7v2.Parse(raw); err != nil {
			return nil, err
		}
		return ackHandler().HandleMessage(ctx, raw)
	})
	_, addr := newTestServer(t, h, nil)
	c := dialRaw(t, addr)
	if _, err := c.Write([]byte(frame("garbage, not HL7") + frame(string(testMessage("OK1"))))); err != nil {
		t.Fatal(err)
	}
	if got := c.readACK(t).Get("MSA-2"); got != "OK1" {
		t.Errorf("first ACK answers %q, want OK1", got)
	}
}

func TestServerAnswersFrameWithoutTrailingCR(t *testing.T) {
	_, addr := newTestServer(t, ackHandler(), nil)
	c := dialRaw(t, addr)
	_ = c.SetDeadline(time.Now().Add(2 * time.Second)) // far below the read timeout
	if _, err := c.Write(append(append([]byte{StartBlock}, testMessage("NOCR")...), EndBlock)); err != nil {
		t.Fatal(err)
	}
	if got := c.readACK(t).Get("MSA-2"); got != "NOCR" {
		t.Errorf("ACK for %q, want NOCR", got)
	}
}

func TestServerHandlerPanicIsAE(t *testing.T) {
	h := HandlerFunc(func(ctx context.Context, raw []byte) ([]byte, error) { panic("bug") })
	_, addr := newTestServer(t, h, nil)
	c := dialRaw(t, addr)
	if err := WriteFrame(c, testMessage("P1")); err != nil {
		t.Fatal(err)
	}
	if ack := c.readACK(t); ack.Get("MSA-1") != "AE" {
		t.Errorf("ACK after a panic = %q, want AE", ack.String())
	}
}

func TestServerOversizedFrame(t *testing.T) {
	_, addr := newTestServer(t, ackHandler(), func(s *Server) { s.MaxFrameSize = 1000 })
	c := dialRaw(t, addr)
	big := frame(string(testMessage("BIG")) + strings.Repeat("NTE|1||x\r", 200))
	if _, err := c.Write([]byte(big + frame(string(testMessage("SMALL"))))); err != nil {
		t.Fatal(err)
	}
	reject := c.readACK(t)
	if reject.Get("MSA-1") != "AR" || reject.Get("MSA-2") != "BIG" || reject.Get("ERR-3") != "207" {
		t.Errorf("oversized frame answered %q, want AR 207 for BIG", reject.String())
	}
	if got := c.readACK(t); got.Get("MSA-2") != "SMALL" || got.Get("MSA-1") != "AA" {
		t.Errorf("second ACK = %q, want AA for SMALL", got.String())
	}
	c2 := dialRaw(t, c.RemoteAddr().String())
	if _, err := c2.Write([]byte(frame("MSH|^~\\&|cut in the middle of the header"+strings.Repeat("x", 2000)) + frame(string(testMessage("AFTER"))))); err != nil {
		t.Fatal(err)
	}
	if got := c2.readACK(t).Get("MSA-2"); got != "AFTER" {
		t.Errorf("ACK answers %q, want AFTER (no ACK for a frame whose MSH is cut)", got)
	}
}

func expectClosed(t *testing.T, c *rawConn, within time.Duration) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(within))
	_, err := c.r.ReadFrame()
	if !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) && !isReset(err) {
		t.Errorf("read = %v, want the server to close the connection", err)
	}
}

func isReset(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && !op.Timeout()
}

func TestServerTimeouts(t *testing.T) {
	t.Run("idle", func(t *testing.T) {
		_, addr := newTestServer(t, ackHandler(), func(s *Server) { s.IdleTimeout = 100 * time.Millisecond })
		c := dialRaw(t, addr)
		start := time.Now()
		expectClosed(t, c, 5*time.Second)
		if d := time.Since(start); d > 3*time.Second {
			t.Errorf("closed after %v, want about 100ms", d)
		}
	})
	t.Run("read", func(t *testing.T) {
		_, addr := newTestServer(t, ackHandler(), func(s *Server) {
			s.IdleTimeout = time.Hour
			s.ReadTimeout = 100 * time.Millisecond
		})
		c := dialRaw(t, addr)
		if _, err := c.Write([]byte("\x0bMSH|^~\\&|half a message")); err != nil {
			t.Fatal(err)
		}
		expectClosed(t, c, 5*time.Second)
	})
}

func TestServerWriteTimeout(t *testing.T) {
	huge := bytes.Repeat([]byte("x"), 64<<20)
	h := HandlerFunc(func(context.Context, []byte) ([]byte, error) { return huge, nil })
	s, addr := newTestServer(t, h, func(s *Server) { s.WriteTimeout = 100 * time.Millisecond })
	c := dialRaw(t, addr)
	if err := WriteFrame(c, testMessage("W1")); err != nil {
		t.Fatal(err)
	}
	// The client never reads: the server must give up on the write and drop the connection.
	deadline := time.Now().Add(5 * time.Second)
	for {
		s.mu.Lock()
		n := len(s.conns)
		s.mu.Unlock()
		if n == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the connection is still open after its write timeout")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestServerHandlerTimeout(t *testing.T) {
	h := HandlerFunc(func(ctx context.Context, raw []byte) ([]byte, error) {
		<-ctx.Done()
		return nil, ctx.Err()
	})
	_, addr := newTestServer(t, h, func(s *Server) { s.HandlerTimeout = 50 * time.Millisecond })
	c := dialRaw(t, addr)
	if err := WriteFrame(c, testMessage("H1")); err != nil {
		t.Fatal(err)
	}
	if ack := c.readACK(t); ack.Get("MSA-1") != "AE" || ack.Get("MSA-2") != "H1" {
		t.Errorf("ACK after a handler timeout = %q, want AE", ack.String())
	}
}

func TestServerMaxConnections(t *testing.T) {
	_, addr := newTestServer(t, ackHandler(), func(s *Server) { s.MaxConnections = 1 })
	c1 := dialRaw(t, addr)
	if err := WriteFrame(c1, testMessage("C1")); err != nil {
		t.Fatal(err)
	}
	c1.readACK(t) // c1 is now surely accepted and counted
	c2 := dialRaw(t, addr)
	expectClosed(t, c2, 5*time.Second)
	if err := WriteFrame(c1, testMessage("C1b")); err != nil {
		t.Fatal(err)
	}
	if got := c1.readACK(t).Get("MSA-2"); got != "C1b" {
		t.Errorf("first connection broken: ACK for %q", got)
	}
}

func TestServerShutdownFinishesMessageInHand(t *testing.T) {
	started := make(chan struct{})
	release := make(chan struct{})
	h := HandlerFunc(func(ctx context.Context, raw []byte) ([]byte, error) {
		close(started)
		<-release
		return ackHandler().HandleMessage(ctx, raw)
	})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{Handler: h, Logger: discardLogger()}
	served := make(chan error, 1)
	go func() { served <- s.Serve(l) }()
	busy := dialRaw(t, l.Addr().String())
	idle := dialRaw(t, l.Addr().String())
	if err := WriteFrame(busy, testMessage("INHAND")); err != nil {
		t.Fatal(err)
	}
	<-started
	shut := make(chan error, 1)
	go func() { shut <- s.Shutdown(context.Background()) }()
	expectClosed(t, idle, 5*time.Second) // idle connections go at once
	if err := <-served; !errors.Is(err, ErrServerClosed) {
		t.Errorf("Serve = %v, want ErrServerClosed", err)
	}
	if _, err := net.DialTimeout("tcp", l.Addr().String(), time.Second); err == nil {
		t.Error("a new connection was accepted during shutdown")
	}
	select {
	case err := <-shut:
		t.Fatalf("Shutdown returned %v before the message in hand was done", err)
	case <-time.After(50 * time.Millisecond):
	}
	close(release)
	if got := busy.readACK(t).Get("MSA-2"); got != "INHAND" {
		t.Errorf("ACK for %q, want INHAND", got)
	}
	if err := <-shut; err != nil {
		t.Errorf("Shutdown = %v", err)
	}
	expectClosed(t, busy, 5*time.Second)
}

func TestServerShutdownDeadline(t *testing.T) {
	cancelled := make(chan struct{})
	h := HandlerFunc(func(ctx context.Context, raw []byte) ([]byte, error) {
		<-ctx.Done()
		close(cancelled)
		return nil, ctx.Err()
	})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{Handler: h, Logger: discardLogger()}
	go s.Serve(l)
	c := dialRaw(t, l.Addr().String())
	if err := WriteFrame(c, testMessage("STUCK")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := s.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Shutdown = %v, want context.DeadlineExceeded", err)
	}
	select {
	case <-cancelled:
	case <-time.After(5 * time.Second):
		t.Error("the handler context was not cancelled")
	}
}

func selfSignedTLS(t testing.TB) (server, client *tls.Config) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "vigil test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	server = &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}, MinVersion: tls.VersionTLS12}
	client = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	return server, client
}

func TestServerTLS(t *testing.T) {
	serverTLS, clientTLS := selfSignedTLS(t)
	_, addr := newTestServer(t, ackHandler(), func(s *Server) { s.TLSConfig = serverTLS })
	c, err := Dial(context.Background(), addr, ClientOptions{TLSConfig: clientTLS})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, id := range []string{"T1", "T2"} {
		ack, err := c.Send(context.Background(), testMessage(id))
		if err != nil {
			t.Fatal(err)
		}
		if ack.Get("MSA-2") != id {
			t.Errorf("ACK for %q, want %s", ack.Get("MSA-2"), id)
		}
	}
	// A plain-text client gets no ACK from a TLS server.
	plain := NewClient(addr, ClientOptions{Timeout: 300 * time.Millisecond})
	defer plain.Close()
	if _, err := plain.Send(context.Background(), testMessage("T3")); err == nil {
		t.Error("plain-text Send to a TLS server succeeded")
	}
}

// syncBuffer is a bytes.Buffer safe for the server's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

func TestServerLogsNoPHI(t *testing.T) {
	for _, phi := range []bool{false, true} {
		var buf syncBuffer
		log := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
		failing := HandlerFunc(func(ctx context.Context, raw []byte) ([]byte, error) {
			return nil, &hl7v2.Error{Code: hl7v2.CodeDataType, Message: "bad value"}
		})
		func() {
			s, addr := newTestServer(t, failing, func(s *Server) { s.Logger = log; s.LogMessageContentPHI = phi })
			c := dialRaw(t, addr)
			if err := WriteFrame(c, testMessage("L1")); err != nil {
				t.Fatal(err)
			}
			c.readACK(t)
			c.Close()
			if err := s.Shutdown(context.Background()); err != nil {
				t.Fatal(err)
			}
		}()
		out := buf.String()
		if leaked := strings.Contains(out, "Doe") || strings.Contains(out, "MRN1"); leaked != phi {
			t.Errorf("LogMessageContentPHI=%v: patient data in logs = %v:\n%s", phi, leaked, out)
		}
		if !strings.Contains(out, "mllp handler failed") {
			t.Errorf("the handler failure was not logged:\n%s", out)
		}
	}
}

func readFixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("../../testdata/hl7", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}
