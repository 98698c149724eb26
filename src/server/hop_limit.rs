//! `serve --hop-limit H`: the IP TTL (IPv4) or unicast hop limit (IPv6) of every accepted
//! connection, so answers die after `H` hops (`aws_signing_helper serve --hop-limit`, default
//! 64; 1 keeps them on this host, like EC2's IMDSv2 hop limit of 1).

use tokio::net::TcpStream;

/// Sets the TTL / hop limit of `stream`'s outgoing packets.
pub(crate) fn apply(stream: &TcpStream, hops: u32) -> std::io::Result<()> {
    match stream.local_addr()? {
        std::net::SocketAddr::V4(_) => stream.set_ttl(hops),
        std::net::SocketAddr::V6(_) => socket2::SockRef::from(stream).set_unicast_hops_v6(hops),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "current_thread")]
    async fn accepted_sockets_carry_the_hop_limit() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let client = tokio::spawn(async move { TcpStream::connect(addr).await.unwrap() });
        let (stream, _) = listener.accept().await.unwrap();
        apply(&stream, 1).unwrap();
        assert_eq!(stream.ttl().unwrap(), 1);
        drop(client.await.unwrap());
        if let Ok(l6) = tokio::net::TcpListener::bind("[::1]:0").await {
            let addr = l6.local_addr().unwrap();
            let client = tokio::spawn(async move { TcpStream::connect(addr).await.unwrap() });
            let (stream, _) = l6.accept().await.unwrap();
            apply(&stream, 2).unwrap();
            assert_eq!(
                socket2::SockRef::from(&stream).unicast_hops_v6().unwrap(),
                2
            );
            drop(client.await.unwrap());
        }
    }
}
