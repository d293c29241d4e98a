module github.com/secmail/secmail

go 1.26.8

require github.com/ProtonMail/go-crypto v1.5.2

require (
	github.com/cloudflare/circl v1.6.3 // indirect
	golang.org/x/crypto v0.59.0 // indirect
	golang.org/x/sys v0.50.0 // indirect
)
