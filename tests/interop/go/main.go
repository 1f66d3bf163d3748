// Command hbonepeer is an HBONE client and server written against Go's
// standard library only (crypto/tls, net/http and its bundled HTTP/2). ambit's
// interop tests run it as an implementation that shares no code with ambit.
//
//	hbonepeer client < spec.json   # CONNECT tunnels to an HBONE server, one JSON line per case
//	hbonepeer server -listen 127.0.0.1:0 -cert c.pem -key k.pem -ca ca.pem
//
// Both print JSON lines on stdout; the server's first line says where it listens.
package main

import (
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sync"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: hbonepeer client|server [flags]")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "client":
		err = runClient(os.Stdin)
	case "server":
		err = runServer(os.Args[2:])
	default:
		err = fmt.Errorf("unknown command %q: expected client or server", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "hbonepeer:", err)
		os.Exit(1)
	}
}

var outMu sync.Mutex

// emit writes one JSON line on stdout; safe from any goroutine.
func emit(v interface{}) {
	b, err := json.Marshal(v)
	if err != nil {
		b, _ = json.Marshal(map[string]string{"event": "error", "error": err.Error()})
	}
	outMu.Lock()
	defer outMu.Unlock()
	os.Stdout.Write(append(b, '\n'))
}

// loadRoots reads a PEM trust bundle.
func loadRoots(file string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("no certificate in %s", file)
	}
	return pool, nil
}

// verifyPeer checks a peer chain against roots for the given key usage
// (names are not checked: HBONE checks identities) and returns the leaf's
// URI SANs.
func verifyPeer(chain []*x509.Certificate, roots *x509.CertPool, usage x509.ExtKeyUsage) ([]string, error) {
	if len(chain) == 0 {
		return nil, errors.New("peer sent no certificate")
	}
	inter := x509.NewCertPool()
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	if _, err := chain[0].Verify(x509.VerifyOptions{
		Roots:         roots,
		Intermediates: inter,
		KeyUsages:     []x509.ExtKeyUsage{usage},
	}); err != nil {
		return nil, err
	}
	return uriSANs(chain[0]), nil
}

func uriSANs(c *x509.Certificate) []string {
	out := []string{}
	for _, u := range c.URIs {
		out = append(out, u.String())
	}
	return out
}
