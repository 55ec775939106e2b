//! The netlink (rtnetlink) requests that build a lab's links, addresses and
//! routes.
//!
//! A netlink socket belongs to the network namespace of the thread that
//! created it, so [`NsNetlink::connect_here`] is called from a thread that is
//! inside the namespace; the socket is registered on a tokio runtime whose
//! handle that thread entered, and every request is then driven from that
//! runtime whatever thread awaits it.

use std::fs::File;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::AsRawFd;

use futures::TryStreamExt;
use rtnetlink::packet_route::address::{AddressAttribute, AddressFlags};
use rtnetlink::packet_route::link::{InfoData, InfoKind, InfoVeth};
use rtnetlink::packet_route::route::RouteScope;
use rtnetlink::{LinkBridge, LinkMessageBuilder, LinkUnspec, LinkVeth, RouteMessageBuilder};

use crate::error::LabError;

/// A netlink connection into one namespace.
#[derive(Clone)]
pub(crate) struct NsNetlink {
    namespace: String,
    handle: rtnetlink::Handle,
}

impl NsNetlink {
    /// Opens a route netlink socket in the calling thread's namespace and
    /// spawns its connection task on `rt`.
    pub(crate) fn connect_here(
        namespace: &str,
        rt: &tokio::runtime::Handle,
    ) -> Result<Self, LabError> {
        let _entered = rt.enter();
        let (connection, handle, _messages) = rtnetlink::new_connection()
            .map_err(|e| LabError::namespace(namespace, "open a netlink socket in it", e))?;
        rt.spawn(connection);
        Ok(NsNetlink {
            namespace: namespace.to_string(),
            handle,
        })
    }

    fn err(&self, action: impl Into<String>) -> impl FnOnce(rtnetlink::Error) -> LabError + '_ {
        let action = action.into();
        move |e| LabError::netlink(&self.namespace, action, e)
    }

    /// Index of the link called `name`.
    pub(crate) async fn link_index(&self, name: &str) -> Result<u32, LabError> {
        let mut links = self
            .handle
            .link()
            .get()
            .match_name(name.to_string())
            .execute();
        match links
            .try_next()
            .await
            .map_err(self.err(format!("look up link {name}")))?
        {
            Some(link) => Ok(link.header.index),
            None => Err(LabError::netlink(
                &self.namespace,
                format!("look up link {name}"),
                rtnetlink::Error::RequestFailed,
            )),
        }
    }

    /// Whether every link of this namespace whose name starts with `prefix`
    /// is operationally up: the kernel's link watch has run for it, which is
    /// also when it activates the link's queue (until then packets sent on
    /// it are dropped).
    pub(crate) async fn all_oper_up(&self, prefix: &str) -> Result<bool, LabError> {
        use rtnetlink::packet_route::link::{LinkAttribute, State};
        let mut links = self.handle.link().get().execute();
        while let Some(link) = links.try_next().await.map_err(self.err("list links"))? {
            let named = link
                .attributes
                .iter()
                .any(|a| matches!(a, LinkAttribute::IfName(n) if n.starts_with(prefix)));
            let up = link
                .attributes
                .iter()
                .any(|a| matches!(a, LinkAttribute::OperState(State::Up)));
            if named && !up {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Brings the link up with multicast enabled.
    pub(crate) async fn set_up(&self, index: u32, what: &str) -> Result<(), LabError> {
        self.handle
            .link()
            .set(
                LinkUnspec::new_with_index(index)
                    .multicast(true)
                    .up()
                    .build(),
            )
            .execute()
            .await
            .map_err(self.err(format!("bring {what} up")))
    }

    /// Brings the loopback interface up.
    pub(crate) async fn loopback_up(&self) -> Result<(), LabError> {
        let lo = self.link_index("lo").await?;
        self.handle
            .link()
            .set(LinkUnspec::new_with_index(lo).up().build())
            .execute()
            .await
            .map_err(self.err("bring lo up"))
    }

    /// Creates the bridge `name`, up, with multicast snooping off (so that it
    /// floods every multicast frame to every port, IGMP/MLD joins or not) and
    /// STP off (ports forward at once). Returns its index.
    pub(crate) async fn add_bridge(&self, name: &str) -> Result<u32, LabError> {
        self.handle
            .link()
            .add(
                LinkBridge::new(name)
                    .mcast_snooping(false)
                    .multicast(true)
                    .build(),
            )
            .execute()
            .await
            .map_err(self.err(format!("create bridge {name}")))?;
        self.link_index(name).await
    }

    /// Creates a veth pair whose end `port` stays in this namespace as a port
    /// of bridge `master`, up, and whose end `peer` is created directly in
    /// the namespace opened as `peer_ns` (so it never appears in the
    /// namespace of the calling process).
    pub(crate) async fn add_veth_port(
        &self,
        port: &str,
        peer: &str,
        peer_mac: [u8; 6],
        peer_ns: &File,
        master: u32,
    ) -> Result<(), LabError> {
        let peer_message = LinkUnspec::new_with_name(peer)
            .setns_by_fd(peer_ns.as_raw_fd())
            .address(peer_mac.to_vec())
            .build();
        let message = LinkMessageBuilder::<LinkVeth>::new_with_info_kind(InfoKind::Veth)
            .name(port.to_string())
            .set_info_data(InfoData::Veth(InfoVeth::Peer(peer_message)))
            .controller(master)
            .multicast(true)
            .up()
            .build();
        self.handle
            .link()
            .add(message)
            .execute()
            .await
            .map_err(self.err(format!("create veth pair {port} <-> {peer}")))
    }

    /// Adds an address to a link. IPv6 addresses skip duplicate address
    /// detection (`nodad`) so that they are usable at once.
    pub(crate) async fn add_address(
        &self,
        index: u32,
        address: IpAddr,
        prefix_len: u8,
        what: &str,
    ) -> Result<(), LabError> {
        let mut request = self.handle.address().add(index, address, prefix_len);
        if address.is_ipv6() {
            request
                .message_mut()
                .attributes
                .push(AddressAttribute::Flags(AddressFlags::Nodad));
        }
        request
            .execute()
            .await
            .map_err(self.err(format!("add address {address}/{prefix_len} to {what}")))
    }

    /// Adds a permanent neighbour entry: `address` is at `mac` on the link.
    /// Permanent entries are exempt from the kernel's neighbour-table
    /// garbage collection and limits (`gc_thresh3`, shared by every
    /// namespace of the machine), which a large lab would otherwise exceed.
    pub(crate) async fn add_neighbour(
        &self,
        index: u32,
        address: IpAddr,
        mac: [u8; 6],
    ) -> Result<(), LabError> {
        self.handle
            .neighbours()
            .add(index, address)
            .link_layer_address(&mac)
            .execute()
            .await
            .map_err(self.err(format!("add neighbour {address}")))
    }

    /// Routes IPv4 multicast (224.0.0.0/4) out of the link, so that sockets
    /// can send to a group without choosing an interface. (IPv6 multicast has
    /// a route on every interface already.)
    pub(crate) async fn add_ipv4_multicast_route(
        &self,
        index: u32,
        what: &str,
    ) -> Result<(), LabError> {
        let route = RouteMessageBuilder::<Ipv4Addr>::new()
            .destination_prefix(Ipv4Addr::new(224, 0, 0, 0), 4)
            .output_interface(index)
            .scope(RouteScope::Link)
            .build();
        self.handle
            .route()
            .add(route)
            .execute()
            .await
            .map_err(self.err(format!("add route 224.0.0.0/4 via {what}")))
    }

    /// On-link default routes (IPv4 and IPv6) out of the link: in a placed
    /// lab, every address of the deployment is reached on the lab segment.
    /// The link is the namespace's only one (it ends at the lab's bridge),
    /// so nothing is routed off the machine.
    pub(crate) async fn add_default_routes(&self, index: u32, what: &str) -> Result<(), LabError> {
        let v4 = RouteMessageBuilder::<Ipv4Addr>::new()
            .destination_prefix(Ipv4Addr::UNSPECIFIED, 0)
            .output_interface(index)
            .scope(RouteScope::Link)
            .build();
        self.handle
            .route()
            .add(v4)
            .execute()
            .await
            .map_err(self.err(format!("add route 0.0.0.0/0 via {what}")))?;
        let v6 = RouteMessageBuilder::<Ipv6Addr>::new()
            .destination_prefix(Ipv6Addr::UNSPECIFIED, 0)
            .output_interface(index)
            .build();
        self.handle
            .route()
            .add(v6)
            .execute()
            .await
            .map_err(self.err(format!("add route ::/0 via {what}")))
    }
}
