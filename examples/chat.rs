//! A chat in the browser, on the broadcast server:
//!
//! ```text
//! cargo run --example chat --features broadcast
//! cargo run --example chat --features broadcast -- --port 0
//! ```
//!
//! It serves the page, the vendored pusher-js and the broadcast server
//! (`/app/{key}`, `/broadcasting/auth`, `/apps/{id}`) on
//! `http://127.0.0.1:<port>` (`--port N`, else `PORT`, else 8080; 0 picks
//! a free one). Open the two addresses it prints in two windows: each sees
//! who is in the room (a presence channel), what the other types
//! ("typing…" is a client event), and the messages the other posts (a
//! `POST /messages`, dispatched as the `#[event(broadcast)]` event
//! `MessagePosted`, sent to everyone but its sender). Every half minute
//! the server posts how long it has been up, from Rust. Ctrl-C stops it.

#[path = "support/chat_app.rs"]
mod chat_app;

#[path = "support/port.rs"]
mod port;

use std::time::Duration;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let chat = chat_app::start(port::port()?).await?;
    println!("chat: {}/?name=ann", chat.url);
    println!("chat: {}/?name=bob", chat.url);
    println!("(open both, in two windows; Ctrl-C stops)");

    let dispatcher = chat.dispatcher.clone();
    let clock = tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_secs(30));
        every.tick().await;
        for half_minutes in 1u64.. {
            every.tick().await;
            let posted = dispatcher
                .dispatch(chat_app::MessagePosted {
                    room: "lobby".into(),
                    user: "server".into(),
                    text: format!("up for {}:{:02}", half_minutes / 2, half_minutes % 2 * 30),
                })
                .await;
            if let Err(error) = posted {
                eprintln!("the server's message was not sent: {error}");
            }
        }
    });

    tokio::signal::ctrl_c().await?;
    clock.abort();
    // Open pages are told to reconnect (4200), and the dispatcher waits
    // for the broadcasts still running.
    chat.broadcaster.shutdown().await;
    let dropped = chat.dispatcher.drain(Duration::from_secs(5)).await;
    if !dropped.is_empty() {
        eprintln!(
            "{} broadcasts were still waiting and are dropped",
            dropped.len()
        );
    }
    chat.task.abort();
    Ok(())
}
