//! Test fixture: a valid component that implements some other world, not `updraft:operator`;
//! the host must reject it with a clear message.

#![allow(unsafe_code)]

wit_bindgen::generate!({
    inline: r#"
        package other:thing@1.0.0;
        world greeter {
            export greet: func(name: string) -> string;
        }
    "#,
});

struct Greeter;

impl Guest for Greeter {
    fn greet(name: String) -> String {
        format!("hello {name}")
    }
}

export!(Greeter);
