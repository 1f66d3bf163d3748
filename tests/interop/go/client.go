package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"math/rand"
	"net"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"
)

// clientSpec is read from stdin: where to connect, as whom, and the cases to run,
// in order, over the transport's pooled HTTP/2 connection.
type clientSpec struct {
	Addr string `json:"addr"` // HBONE server ip:port
	Cert string `json:"cert"` // client certificate chain file (PEM)
	Key  string `json:"key"`  // its key file (PEM)
	CA   string `json:"ca"`   // trust bundle file (PEM)
	// SNI to send; empty sends none (Go sends no SNI for an IP address either).
	SNI string `json:"sni"`
	// Expect, when set, is the only server SPIFFE ID accepted (as an HBONE client must).
	Expect string `json:"expect"`
	// MaxTLS "1.2" offers TLS 1.2 only (a server that speaks HBONE must refuse it).
	MaxTLS    string       `json:"maxTls"`
	TimeoutMs int          `json:"timeoutMs"`
	Cases     []clientCase `json:"cases"`
}

type clientCase struct {
	Name string `json:"name"`
	// echo | early | earlyclose | nobody | reset | bulk | halfclose | status | parallel
	Op        string `json:"op"`
	Authority string `json:"authority"`
	Send      string `json:"send"`
	Bytes     int    `json:"bytes"`
	Prefix    string `json:"prefix"` // what the echo app writes before echoing
	Streams   int    `json:"streams"`
	// HoldMs (echo) waits this long with the tunnel idle, then echoes Send again.
	HoldMs int `json:"holdMs"`
	// TimeoutMs overrides the spec's deadline for this case.
	TimeoutMs int `json:"timeoutMs"`
}

type caseResult struct {
	Name       string   `json:"name"`
	Status     int      `json:"status,omitempty"`
	Proto      string   `json:"proto,omitempty"`
	Body       string   `json:"body,omitempty"`
	Tail       string   `json:"tail,omitempty"` // read after our half-close (echo op)
	Peer       []string `json:"peer,omitempty"`
	TLSVersion string   `json:"tlsVersion,omitempty"`
	Cipher     string   `json:"cipher,omitempty"`
	ALPN       string   `json:"alpn,omitempty"`
	Sent       int64    `json:"sent,omitempty"`
	Recv       int64    `json:"recv,omitempty"`
	SentSHA    string   `json:"sentSha,omitempty"`
	RecvSHA    string   `json:"recvSha,omitempty"`
	OK         int      `json:"ok,omitempty"`
	Handshakes int32    `json:"handshakes,omitempty"`
	Ms         int64    `json:"ms"`
	Error      string   `json:"error,omitempty"`
}

func runClient(in io.Reader) error {
	var spec clientSpec
	if err := json.NewDecoder(in).Decode(&spec); err != nil {
		return fmt.Errorf("reading the spec on stdin: %w", err)
	}
	roots, err := loadRoots(spec.CA)
	if err != nil {
		return err
	}
	cert, err := tls.LoadX509KeyPair(spec.Cert, spec.Key)
	if err != nil {
		return err
	}
	var handshakes int32
	minVersion, maxVersion := uint16(tls.VersionTLS13), uint16(tls.VersionTLS13)
	if spec.MaxTLS == "1.2" {
		minVersion, maxVersion = tls.VersionTLS12, tls.VersionTLS12
	}
	cfg := &tls.Config{
		Certificates: []tls.Certificate{cert},
		MinVersion:   minVersion,
		MaxVersion:   maxVersion,
		NextProtos:   []string{"h2"},
		ServerName:   spec.SNI,
		// Names are not checked, identities are: the chain is verified here.
		InsecureSkipVerify: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			atomic.AddInt32(&handshakes, 1)
			ids, err := verifyPeer(cs.PeerCertificates, roots, x509.ExtKeyUsageServerAuth)
			if err != nil {
				return err
			}
			if spec.Expect != "" && !(len(ids) == 1 && ids[0] == spec.Expect) {
				return fmt.Errorf("server identity %v is not the expected %s", ids, spec.Expect)
			}
			return nil
		},
	}
	tr := &http.Transport{
		TLSClientConfig:     cfg,
		ForceAttemptHTTP2:   true,
		DisableCompression:  true,
		TLSHandshakeTimeout: 5 * time.Second,
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
	}
	defer tr.CloseIdleConnections()
	timeout := time.Duration(spec.TimeoutMs) * time.Millisecond
	if timeout <= 0 {
		timeout = 15 * time.Second
	}
	for _, c := range spec.Cases {
		d := timeout
		if c.TimeoutMs > 0 {
			d = time.Duration(c.TimeoutMs) * time.Millisecond
		}
		ctx, cancel := context.WithTimeout(context.Background(), d)
		began := time.Now()
		r := runCase(ctx, tr, spec.Addr, c)
		cancel()
		r.Name = c.Name
		r.Ms = time.Since(began).Milliseconds()
		emit(r)
	}
	emit(caseResult{Name: "summary", Handshakes: atomic.LoadInt32(&handshakes)})
	return nil
}

// tunnel is one CONNECT stream: the response and the write side of its body.
type tunnel struct {
	resp *http.Response
	w    *io.PipeWriter
}

// How a tunnel's request body starts.
type start struct {
	early      []byte // written right behind the request headers, before any answer
	closeEarly bool   // and then ended (DATA, END_STREAM) without waiting for the answer
	noBody     bool   // no body at all: END_STREAM on the HEADERS frame
}

// open sends CONNECT with :authority = authority to the server at addr and
// returns once the response headers arrived; the request body stays open
// unless st says otherwise.
func open(ctx context.Context, tr *http.Transport, addr, authority string, st start, r *caseResult) (*tunnel, error) {
	pr, pw := io.Pipe()
	// The transport blocks reading the body and does not watch ctx meanwhile:
	// end the body on ctx's end so that nothing can hang past the deadline.
	go func() {
		<-ctx.Done()
		pw.CloseWithError(ctx.Err())
	}()
	if len(st.early) > 0 {
		go func() {
			pw.Write(st.early)
			if st.closeEarly {
				pw.Close()
			}
		}()
	}
	req := (&http.Request{
		Method:        http.MethodConnect,
		URL:           &url.URL{Scheme: "https", Host: addr},
		Host:          authority,
		Header:        make(http.Header),
		Body:          pr,
		ContentLength: -1,
	}).WithContext(ctx)
	if st.noBody {
		req.Body, req.ContentLength = nil, 0
	}
	resp, err := tr.RoundTrip(req)
	if err != nil {
		pw.CloseWithError(err)
		return nil, err
	}
	r.Status = resp.StatusCode
	r.Proto = resp.Proto
	if resp.TLS != nil {
		r.ALPN = resp.TLS.NegotiatedProtocol
		r.Cipher = tls.CipherSuiteName(resp.TLS.CipherSuite)
		r.TLSVersion = versionName(resp.TLS.Version)
		if len(resp.TLS.PeerCertificates) > 0 {
			r.Peer = uriSANs(resp.TLS.PeerCertificates[0])
		}
	}
	return &tunnel{resp: resp, w: pw}, nil
}

func (t *tunnel) close() {
	t.w.Close()
	t.resp.Body.Close()
}

func runCase(ctx context.Context, tr *http.Transport, addr string, c clientCase) (r caseResult) {
	fail := func(err error) caseResult {
		r.Error = err.Error()
		return r
	}
	if c.Op == "parallel" {
		return parallel(ctx, tr, addr, c)
	}
	var st start
	switch c.Op {
	case "early":
		st.early = []byte(c.Send)
	case "earlyclose":
		st.early, st.closeEarly = []byte(c.Send), true
	case "nobody":
		st.noBody = true
	}
	t, err := open(ctx, tr, addr, c.Authority, st, &r)
	if err != nil {
		return fail(err)
	}
	defer t.close()
	if c.Op == "status" || r.Status != http.StatusOK {
		t.w.Close()
		b, _ := io.ReadAll(io.LimitReader(t.resp.Body, 4096))
		r.Body = string(b)
		return r
	}
	switch c.Op {
	case "earlyclose", "nobody":
		// Our side ended before the answer: read whatever comes until the server ends.
		b, err := io.ReadAll(t.resp.Body)
		r.Body = string(b)
		if err != nil {
			return fail(fmt.Errorf("reading after %d bytes: %w", len(b), err))
		}
	case "echo", "early", "reset":
		// Full duplex while both sides are open: the echo arrives before we close.
		if c.Op != "early" {
			if _, err := io.WriteString(t.w, c.Send); err != nil {
				return fail(err)
			}
		}
		b := make([]byte, len(c.Prefix)+len(c.Send))
		if _, err := io.ReadFull(t.resp.Body, b); err != nil {
			return fail(fmt.Errorf("reading the echo: %w", err))
		}
		r.Body = string(b)
		if c.Op == "reset" {
			// A failed request body makes the transport reset the stream
			// (RST_STREAM CANCEL) instead of ending it.
			t.w.CloseWithError(errors.New("reset by the test"))
			t.resp.Body.Close()
			return r
		}
		if c.HoldMs > 0 {
			// Idle long enough for the peer's keepalive PINGs to need answers.
			time.Sleep(time.Duration(c.HoldMs) * time.Millisecond)
			if _, err := io.WriteString(t.w, c.Send); err != nil {
				return fail(fmt.Errorf("writing after %d ms idle: %w", c.HoldMs, err))
			}
			b := make([]byte, len(c.Send))
			if _, err := io.ReadFull(t.resp.Body, b); err != nil {
				return fail(fmt.Errorf("reading after %d ms idle: %w", c.HoldMs, err))
			}
			r.Body += string(b)
		}
		t.w.Close()
		tail, err := io.ReadAll(t.resp.Body)
		if err != nil {
			return fail(fmt.Errorf("reading after half-close: %w", err))
		}
		r.Tail = string(tail)
	case "bulk":
		// Writes and reads concurrently.
		done := make(chan error, 1)
		go func() { done <- writeRandom(t.w, c.Bytes, &r) }()
		if err := readEcho(t.resp.Body, c.Prefix, &r); err != nil {
			return fail(err)
		}
		if err := <-done; err != nil {
			return fail(err)
		}
	case "halfclose":
		// Writes everything and ends the request stream before reading a byte:
		// the whole echo must still come back on the half-closed stream.
		if err := writeRandom(t.w, c.Bytes, &r); err != nil {
			return fail(err)
		}
		if err := readEcho(t.resp.Body, c.Prefix, &r); err != nil {
			return fail(err)
		}
	default:
		return fail(fmt.Errorf("unknown op %q", c.Op))
	}
	return r
}

// writeRandom writes n pseudo-random bytes, then closes w (END_STREAM).
func writeRandom(w *io.PipeWriter, n int, r *caseResult) error {
	h := sha256.New()
	rnd := rand.New(rand.NewSource(int64(n)))
	buf := make([]byte, 64<<10)
	for sent := 0; sent < n; {
		k := len(buf)
		if n-sent < k {
			k = n - sent
		}
		rnd.Read(buf[:k])
		h.Write(buf[:k])
		if _, err := w.Write(buf[:k]); err != nil {
			return fmt.Errorf("writing after %d bytes: %w", sent, err)
		}
		sent += k
		r.Sent = int64(sent)
	}
	r.SentSHA = hex.EncodeToString(h.Sum(nil))
	return w.Close()
}

// readEcho reads the app's prefix, then hashes everything until end of stream.
func readEcho(body io.Reader, prefix string, r *caseResult) error {
	p := make([]byte, len(prefix))
	if _, err := io.ReadFull(body, p); err != nil {
		return fmt.Errorf("reading the prefix: %w", err)
	}
	if !bytes.Equal(p, []byte(prefix)) {
		return fmt.Errorf("reply starts with %q, expected %q", p, prefix)
	}
	var h hash.Hash = sha256.New()
	n, err := io.Copy(h, body)
	r.Recv = n
	if err != nil {
		return fmt.Errorf("reading after %d bytes: %w", n, err)
	}
	r.RecvSHA = hex.EncodeToString(h.Sum(nil))
	return nil
}

// parallel runs c.Streams echo tunnels at once (multiplexed on one connection).
func parallel(ctx context.Context, tr *http.Transport, addr string, c clientCase) caseResult {
	var wg sync.WaitGroup
	var mu sync.Mutex
	res := caseResult{}
	var errs []string
	for i := 0; i < c.Streams; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			send := fmt.Sprintf("%s-%d", c.Send, i)
			r := runCase(ctx, tr, addr, clientCase{Op: "echo", Authority: c.Authority, Send: send, Prefix: c.Prefix})
			mu.Lock()
			defer mu.Unlock()
			if r.Error == "" && r.Status == http.StatusOK && r.Body == c.Prefix+send && r.Tail == "" {
				res.OK++
				res.Status, res.Peer, res.ALPN = r.Status, r.Peer, r.ALPN
			} else {
				errs = append(errs, fmt.Sprintf("%d: status %d body %q error %s", i, r.Status, r.Body, r.Error))
			}
		}(i)
	}
	wg.Wait()
	if len(errs) > 0 {
		res.Error = fmt.Sprint(errs)
	}
	return res
}

func versionName(v uint16) string {
	switch v {
	case tls.VersionTLS13:
		return "TLSv1.3"
	case tls.VersionTLS12:
		return "TLSv1.2"
	}
	return fmt.Sprintf("0x%04x", v)
}
