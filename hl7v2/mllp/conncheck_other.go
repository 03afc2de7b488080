//go:build !unix

package mllp

import "net"

// peerClosed cannot look without blocking here: a closed connection is found by the Send that
// uses it.
func peerClosed(net.Conn) bool { return false }
