//! The gRPC call: `SpiffeWorkloadAPI.FetchX509SVID` over HTTP/2 on the endpoint's socket.
//!
//! tonic supplies the gRPC part (framing, status, the streamed decode) without its transport;
//! the connection is hyper's HTTP/2 client on a tokio UNIX or TCP stream (both already in the
//! binary for `serve`), wrapped as the `tower` service tonic calls ([`Connection`]). Every call
//! carries `workload.spiffe.io: true`. One connection per stream: when the stream ends the
//! connection goes with it, and the caller opens a new one.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::uri::{PathAndQuery, Uri};
use hyper::client::conn::http2::SendRequest;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncRead, AsyncWrite};
use tonic::metadata::MetadataValue;

use super::proto::{X509SvidRequest, X509SvidResponse};
use super::{ConnectKind, Endpoint, SpiffeError};

/// The open stream of responses.
pub(crate) type X509Stream = tonic::Streaming<X509SvidResponse>;

/// The method's path: `workload.proto` declares no package.
const FETCH_X509_SVID: &str = "/SpiffeWorkloadAPI/FetchX509SVID";

/// An HTTP/2 connection as the `tower::Service` tonic sends requests through.
struct Connection(SendRequest<tonic::body::Body>);

type ResponseFuture = Pin<
    Box<dyn Future<Output = Result<http::Response<hyper::body::Incoming>, hyper::Error>> + Send>,
>;

impl tower_service::Service<http::Request<tonic::body::Body>> for Connection {
    type Response = http::Response<hyper::body::Incoming>;
    type Error = hyper::Error;
    type Future = ResponseFuture;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<tonic::body::Body>) -> Self::Future {
        Box::pin(self.0.send_request(req))
    }
}

/// Connects to `endpoint` and opens `FetchX509SVID`: the response headers have arrived (a
/// status the server answers at once, like `InvalidArgument` or `PermissionDenied`, is an
/// error here); the messages follow on the stream.
pub(crate) async fn fetch_x509_svids(endpoint: &Endpoint) -> Result<X509Stream, SpiffeError> {
    let name = endpoint.to_string();
    let send = match endpoint {
        Endpoint::Unix(path) => {
            let io = tokio::net::UnixStream::connect(path)
                .await
                .map_err(|e| connect_error(&name, &e))?;
            handshake(io, &name).await?
        }
        Endpoint::Tcp(addr) => {
            let io = tokio::net::TcpStream::connect(addr)
                .await
                .map_err(|e| connect_error(&name, &e))?;
            handshake(io, &name).await?
        }
    };
    // The authority is not used on a socket; go-spiffe sends "localhost" too.
    let mut grpc =
        tonic::client::Grpc::with_origin(Connection(send), Uri::from_static("http://localhost"));
    grpc.ready().await.map_err(|e| SpiffeError::Connect {
        endpoint: name.clone(),
        kind: ConnectKind::Other,
        why: format!("HTTP/2 connection not ready: {e}"),
    })?;
    let mut request = tonic::Request::new(X509SvidRequest {});
    request
        .metadata_mut()
        .insert("workload.spiffe.io", MetadataValue::from_static("true"));
    let codec = tonic_prost::ProstCodec::<X509SvidRequest, X509SvidResponse>::default();
    let response = grpc
        .server_streaming(request, PathAndQuery::from_static(FETCH_X509_SVID), codec)
        .await
        .map_err(|s| status_error(&name, &s))?;
    Ok(response.into_inner())
}

async fn handshake<S>(io: S, name: &str) -> Result<SendRequest<tonic::body::Body>, SpiffeError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (send, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(io))
            .await
            .map_err(|e| SpiffeError::Connect {
                endpoint: name.to_string(),
                kind: ConnectKind::Other,
                why: format!("HTTP/2 handshake failed: {e}"),
            })?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(error = %e, "the Workload API connection ended");
        }
    });
    Ok(send)
}

fn connect_error(name: &str, e: &std::io::Error) -> SpiffeError {
    let kind = match e.kind() {
        std::io::ErrorKind::NotFound => ConnectKind::Absent,
        std::io::ErrorKind::ConnectionRefused => ConnectKind::Refused,
        _ => ConnectKind::Other,
    };
    SpiffeError::Connect {
        endpoint: name.to_string(),
        kind,
        why: e.to_string(),
    }
}

/// A gRPC status as our error (the message is the server's, quoted when shown).
pub(crate) fn status_error(name: &str, s: &tonic::Status) -> SpiffeError {
    SpiffeError::Status {
        endpoint: name.to_string(),
        code: s.code(),
        message: s.message().chars().take(300).collect(),
    }
}
