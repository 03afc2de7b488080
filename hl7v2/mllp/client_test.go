package mllp

import (
	"context"
	"errors"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vigil-health/vigil/hl7v2"
)

// fakeServer accepts connections and runs script on each, in turn.
func fakeServer(t *testing.T, script func(n int, c *rawConn)) (addr string, conns *atomic.Int64) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	conns = new(atomic.Int64)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			n := int(conns.Add(1))
			go func() {
				defer c.Close()
				script(n, &rawConn{Conn: c, r: NewReader(c, 0)})
			}()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		<-done
	})
	return l.Addr().String(), conns
}

func ackBytes(t *testing.T, frame []byte, code hl7v2.AckCode) []byte {
	m, err := hl7v2.Parse(frame)
	if err != nil {
		t.Errorf("fake server: %v", err)
		return nil
	}
	ack, err := hl7v2.NewACK(m, code)
	if err != nil {
		t.Errorf("fake server: %v", err)
		return nil
	}
	b, _ := ack.Encode()
	return b
}

func TestClientDiscardsStaleACKs(t *testing.T) {
	addr, _ := fakeServer(t, func(n int, c *rawConn) {
		for {
			f, err := c.r.ReadFrame()
			if err != nil {
				return
			}
			stale := ackBytes(t, testMessage("SOMEONE-ELSE"), hl7v2.AA)
			_ = WriteFrame(c, stale)
			_ = WriteFrame(c, []byte("not HL7 at all"))
			_ = WriteFrame(c, ackBytes(t, f, hl7v2.AE))
		}
	})
	c := NewClient(addr, ClientOptions{})
	defer c.Close()
	ack, err := c.Send(context.Background(), testMessage("MINE"))
	if err != nil {
		t.Fatal(err)
	}
	if ack.Get("MSA-2") != "MINE" || ack.Get("MSA-1") != "AE" {
		t.Errorf("ACK = %q", ack.String())
	}
	if got := c.StaleACKs(); got != 2 {
		t.Errorf("StaleACKs = %d, want 2", got)
	}
}

func TestClientTimeoutThenLateACK(t *testing.T) {
	first := make(chan []byte, 1)
	addr, conns := fakeServer(t, func(n int, c *rawConn) {
		f, err := c.r.ReadFrame()
		if err != nil {
			return
		}
		first <- f // do not answer yet
		g, err := c.r.ReadFrame()
		if err != nil {
			t.Logf("fake server: %v", err)
			return
		}
		_ = WriteFrame(c, ackBytes(t, f, hl7v2.AA)) // late answer to the first
		_ = WriteFrame(c, ackBytes(t, g, hl7v2.AA))
		_, _ = c.r.ReadFrame()
	})
	c := NewClient(addr, ClientOptions{})
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := c.Send(ctx, testMessage("SLOW"))
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Send = %v, want context.DeadlineExceeded", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("Send gave up after %v, want about 150ms", d)
	}
	<-first
	ctx2, cancel2 := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel2()
	ack, err := c.Send(ctx2, testMessage("NEXT"))
	if err != nil {
		t.Fatal(err)
	}
	if ack.Get("MSA-2") != "NEXT" || c.StaleACKs() != 1 || conns.Load() != 1 {
		t.Errorf("ACK for %q, stale %d, connections %d; want NEXT, 1, 1", ack.Get("MSA-2"), c.StaleACKs(), conns.Load())
	}
}

func TestClientTimeoutOption(t *testing.T) {
	addr, _ := fakeServer(t, func(n int, c *rawConn) {
		_, _ = c.r.ReadFrame()
		_, _ = c.r.ReadFrame() // never answers
	})
	c := NewClient(addr, ClientOptions{Timeout: 100 * time.Millisecond})
	defer c.Close()
	if _, err := c.Send(context.Background(), testMessage("X")); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Send = %v, want context.DeadlineExceeded", err)
	}
}

func TestClientReconnects(t *testing.T) {
	addr, conns := fakeServer(t, func(n int, c *rawConn) {
		f, err := c.r.ReadFrame()
		if err != nil {
			return
		}
		_ = WriteFrame(c, ackBytes(t, f, hl7v2.AA))
		// and close: an idle timeout on the server, say
	})
	c := NewClient(addr, ClientOptions{})
	defer c.Close()
	for i, id := range []string{"R1", "R2", "R3"} {
		if i > 0 {
			time.Sleep(50 * time.Millisecond) // let the server's close arrive
		}
		ack, err := c.Send(context.Background(), testMessage(id))
		if err != nil {
			t.Fatalf("Send %s: %v", id, err)
		}
		if ack.Get("MSA-2") != id {
			t.Errorf("ACK for %q, want %s", ack.Get("MSA-2"), id)
		}
	}
	if got := conns.Load(); got != 3 {
		t.Errorf("server saw %d connections, want 3", got)
	}
	if got := c.Dials(); got != 3 {
		t.Errorf("Dials = %d, want 3", got)
	}
}

func TestClientBrokenMidSendThenReconnect(t *testing.T) {
	addr, conns := fakeServer(t, func(n int, c *rawConn) {
		f, err := c.r.ReadFrame()
		if err != nil || n == 1 {
			return // the first connection dies without an answer
		}
		_ = WriteFrame(c, ackBytes(t, f, hl7v2.AA))
	})
	c := NewClient(addr, ClientOptions{})
	defer c.Close()
	if _, err := c.Send(context.Background(), testMessage("LOST")); err == nil || errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Send on a dying connection = %v, want a connection error", err)
	}
	ack, err := c.Send(context.Background(), testMessage("RETRY"))
	if err != nil {
		t.Fatal(err)
	}
	if ack.Get("MSA-2") != "RETRY" || conns.Load() != 2 {
		t.Errorf("ACK for %q over %d connections", ack.Get("MSA-2"), conns.Load())
	}
}

func TestClientErrors(t *testing.T) {
	c := NewClient("127.0.0.1:1", ClientOptions{DialTimeout: time.Second})
	if _, err := c.Send(context.Background(), []byte("not HL7")); err == nil {
		t.Error("Send of a non-message succeeded")
	}
	if _, err := c.Send(context.Background(), []byte("MSH|^~\\&|A||||||ORU^R01||P|2.6\r")); err == nil {
		t.Error("Send of a message without MSH-10 succeeded")
	}
	if _, err := c.Send(context.Background(), testMessage("X")); err == nil {
		t.Error("Send to a closed port succeeded")
	}
	c.Close()
	if _, err := c.Send(context.Background(), testMessage("X")); !errors.Is(err, ErrClientClosed) {
		t.Errorf("Send after Close = %v, want ErrClientClosed", err)
	}
	if _, err := Dial(context.Background(), "127.0.0.1:1", ClientOptions{}); err == nil {
		t.Error("Dial of a closed port succeeded")
	}
}

func TestClientAgainstServer(t *testing.T) {
	_, addr := newTestServer(t, ackHandler(), nil)
	c, err := Dial(context.Background(), addr, ClientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, name := range []string{"pcd01_oru_r01_monitor.hl7", "lab_oru_r01.hl7", "charset_8859_1.hl7", "msh2_5char.hl7"} {
		raw := readFixture(t, name)
		ack, err := c.Send(context.Background(), raw)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		m, _ := hl7v2.Parse(raw)
		if ack.Get("MSA-2") != m.ControlID() || hl7v2.IsACK(m) || !hl7v2.IsACK(ack) {
			t.Errorf("%s: ACK %q", name, ack.String())
		}
	}
}
