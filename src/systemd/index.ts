export { sdNotify, type SdNotifyOptions } from "./sd-notify.js";
