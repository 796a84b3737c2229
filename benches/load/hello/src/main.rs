//! Hello-world server for scripts/bench.sh: `strongroom-bench-hello 127.0.0.1:PORT`.
//! Same actix-web configuration as strongroom's server.rs, no work per request.

use actix_web::{web, App, HttpResponse, HttpServer};

async fn hello(body: web::Bytes) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header(("x-amzn-RequestId", "00000000-0000-0000-0000-000000000000"))
        .insert_header(("content-type", "application/x-amz-json-1.1"))
        .body(format!("{{\"Hello\":\"world\",\"Read\":{}}}", body.len()))
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let listen = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8099".to_owned());
    HttpServer::new(|| App::new().default_service(web::to(hello)))
        .client_request_timeout(std::time::Duration::from_secs(10))
        .client_disconnect_timeout(std::time::Duration::from_secs(5))
        .bind(&listen)?
        .run()
        .await
}
