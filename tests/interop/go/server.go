package main

import (
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"time"
)

// connectEvent is logged for every request the server answers.
type connectEvent struct {
	Event     string            `json:"event"`
	Method    string            `json:"method"`
	Proto     string            `json:"proto"`
	Authority string            `json:"authority"`
	Peer      []string          `json:"peer"`
	Status    int               `json:"status"`
	Error     string            `json:"error,omitempty"`
	Headers   map[string]string `json:"headers"`
}

type closedEvent struct {
	Event     string `json:"event"`
	Authority string `json:"authority"`
	Up        int64  `json:"up"`   // client to upstream
	Down      int64  `json:"down"` // upstream to client
}

func runServer(args []string) error {
	fs := flag.NewFlagSet("server", flag.ContinueOnError)
	listen := fs.String("listen", "127.0.0.1:0", "address to listen on (loopback)")
	certFile := fs.String("cert", "", "server certificate chain (PEM)")
	keyFile := fs.String("key", "", "server key (PEM)")
	caFile := fs.String("ca", "", "trust bundle for client certificates (PEM)")
	trustDomain := fs.String("trust-domain", "", "require client SPIFFE IDs in this trust domain")
	if err := fs.Parse(args); err != nil {
		return err
	}
	host, _, err := net.SplitHostPort(*listen)
	if ip := net.ParseIP(host); err != nil || ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("-listen %q: expected a loopback ip:port", *listen)
	}
	roots, err := loadRoots(*caFile)
	if err != nil {
		return err
	}
	cert, err := tls.LoadX509KeyPair(*certFile, *keyFile)
	if err != nil {
		return err
	}
	cfg := &tls.Config{
		Certificates: []tls.Certificate{cert},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    roots,
		MinVersion:   tls.VersionTLS13,
		NextProtos:   []string{"h2"},
		VerifyConnection: func(cs tls.ConnectionState) error {
			if *trustDomain == "" {
				return nil
			}
			ids := uriSANs(cs.PeerCertificates[0])
			if len(ids) != 1 || !strings.HasPrefix(ids[0], "spiffe://"+*trustDomain+"/") {
				return fmt.Errorf("client %v is not in trust domain %s", ids, *trustDomain)
			}
			return nil
		},
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	var conns int32
	srv := &http.Server{
		Handler:           &connectHandler{},
		TLSConfig:         cfg,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          log.New(os.Stderr, "hbonepeer server: ", 0),
		ConnState: func(_ net.Conn, s http.ConnState) {
			if s == http.StateNew {
				emit(map[string]interface{}{"event": "conn", "n": atomic.AddInt32(&conns, 1)})
			}
		},
	}
	emit(map[string]string{"event": "listening", "addr": ln.Addr().String()})
	return srv.ServeTLS(ln, "", "")
}

// connectHandler answers HTTP/2 CONNECT by dialing :authority: 200 once the
// upstream connection is up (503 when it is not), then copies bytes both ways,
// passing each direction's end on as a half-close.
type connectHandler struct{}

func (connectHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ev := connectEvent{
		Event:     "connect",
		Method:    r.Method,
		Proto:     r.Proto,
		Authority: r.Host,
		Peer:      []string{},
		Headers:   map[string]string{},
	}
	if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
		ev.Peer = uriSANs(r.TLS.PeerCertificates[0])
	}
	for k, v := range r.Header {
		ev.Headers[strings.ToLower(k)] = strings.Join(v, ", ")
	}
	answer := func(status int, msg string) {
		ev.Status, ev.Error = status, msg
		emit(ev)
		if status != http.StatusOK {
			http.Error(w, msg, status)
		}
	}
	if r.Method != http.MethodConnect || r.ProtoMajor != 2 {
		answer(http.StatusBadRequest, "not an HTTP/2 CONNECT")
		return
	}
	if host, _, err := net.SplitHostPort(r.Host); err != nil || net.ParseIP(host) == nil {
		answer(http.StatusBadRequest, fmt.Sprintf(":authority %q is not ip:port", r.Host))
		return
	}
	up, err := net.DialTimeout("tcp", r.Host, 5*time.Second)
	if err != nil {
		answer(http.StatusServiceUnavailable, err.Error())
		return
	}
	defer up.Close()
	flusher := w.(http.Flusher)
	w.WriteHeader(http.StatusOK)
	flusher.Flush()
	answer(http.StatusOK, "")

	upDone := make(chan int64, 1)
	go func() {
		n, _ := io.Copy(up, r.Body)
		up.(*net.TCPConn).CloseWrite()
		upDone <- n
	}()
	var down int64
	buf := make([]byte, 64<<10)
	for {
		n, err := up.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				break
			}
			flusher.Flush()
			down += int64(n)
		}
		if err != nil {
			if !errors.Is(err, io.EOF) {
				// Upstream reset: nothing more can be delivered, unblock the reader.
				log.Printf("upstream %s: %v", r.Host, err)
				r.Body.Close()
			}
			break
		}
	}
	// Returning ends the response stream (END_STREAM). Wait for the client's
	// side first so an upstream that finished writing still gets its input.
	emit(closedEvent{Event: "closed", Authority: r.Host, Up: <-upDone, Down: down})
}
