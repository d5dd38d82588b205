// Command echo serves the echo test skill. With ECHO_PLAIN_GRPC_SOCKET
// set, it serves the same Skill service over plain gRPC on that unix
// socket instead, without go-plugin, for benchmarks to compare against;
// with ECHO_PLAIN_GRPC_TLS=1 too, over TLS with a fresh self-signed
// certificate whose DER it prints in base64.
package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"fmt"
	"math/big"
	"net"
	"os"
	"time"

	"github.com/agentmesh/agentmesh-go/sdk/skillrpc"
	"github.com/agentmesh/agentmesh-go/sdk/skillrpc/skillpb"
	"github.com/agentmesh/agentmesh-go/sdk/skilltest/testdata/echo/echoskill"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
)

func main() {
	if sock := os.Getenv("ECHO_PLAIN_GRPC_SOCKET"); sock != "" {
		os.Exit(servePlain(sock, os.Getenv("ECHO_PLAIN_GRPC_TLS") == "1"))
	}
	os.Exit(echoskill.New().Main())
}

func servePlain(sock string, useTLS bool) int {
	p := echoskill.New().PluginForTest(os.Stderr).(*skillrpc.SkillGRPCPlugin)
	ln, err := net.Listen("unix", sock)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	var opts []grpc.ServerOption
	ready := "ready"
	if useTLS {
		cert, err := selfSigned()
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		opts = append(opts, grpc.Creds(credentials.NewTLS(&tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})))
		ready += " " + base64.StdEncoding.EncodeToString(cert.Certificate[0])
	}
	srv := grpc.NewServer(opts...)
	skillpb.RegisterSkillServer(srv, p.Impl)
	fmt.Println(ready)
	if err := srv.Serve(ln); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

func selfSigned() (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "localhost"},
		DNSNames:     []string{"localhost"},
		NotBefore:    time.Now().Add(-time.Minute),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}
